"""Griffe extension: the code's Sphinx roles (``:class:`~a.b.C```) as Markdown code spans.

modelyard's docstrings are read in editors and by ``help()`` as well as on the site, and they use
reStructuredText roles; mkdocstrings renders Markdown, where a role would show as raw text. This
turns ``:class:`~modelyard.observe.CallScope``` into `` `CallScope` `` (and the full path when there is
no ``~``) at build time, without touching the source.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)`")


def _markdown(text: str) -> str:
    return ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)
