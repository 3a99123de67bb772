"""Hooks of modelyard-template. Implement only what you need; see docs/plugins/hooks.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard import hookimpl

if TYPE_CHECKING:
    from modelyard.hookspecs import RegisterFamily

HOOK_API = (1, 0)


@hookimpl
def register_families(register: RegisterFamily) -> None:
    """Register this plugin's model families (none yet)."""
