"""``acme/<deployment>``: Azure-hosted "Acme" models that take ``max_output`` for ``max_tokens``
and refuse ``seed``. Only data: the Azure plugins build, authenticate and normalise the call."""

from __future__ import annotations

from modelyard import hookimpl
from modelyard.families import Family, ParamRules

HOOK_API = (1, 0)


@hookimpl
def register_families(register):  # type: ignore[no-untyped-def]
    register(
        Family(
            name="acme",
            provider="azure",
            prefix="acme/",
            rules=ParamRules(rename={"max_tokens": "max_output"}, unsupported=frozenset({"seed"})),
            description="Acme models on Azure (test fixture)",
        )
    )
