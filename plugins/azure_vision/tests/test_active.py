"""The request wrapper's ``active_when`` check (HOOK_API 1.13): it turns down exactly the requests
the wrapper would pass through unchanged, and the pipeline then does not enter the wrapper."""

from __future__ import annotations

from typing import Any

import pytest
from modelyard._dispatch import _active, _plan
from modelyard.plugins import get_plugins
from modelyard.types import ChatRequest, Connection, ProviderRequest, Route
from modelyard_azure_vision import plugin

IMAGE = {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}
ROUTE = Route(provider="azure", family="gpt-4o", model="azure/gpt-4o", deployment="gpt-4o", operation="chat")
BUILT = ProviderRequest(method="POST", url="https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions",
                        json_body={"messages": []})  # fmt: skip

CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], str | None, bool]] = [
    ("text", [{"role": "user", "content": "hi"}], {}, None, False),
    ("a tool call", [{"role": "assistant", "content": None, "tool_calls": []}, {"role": "tool", "content": "1"}], {}, None, False),
    ("data_sources alone", [{"role": "user", "content": "hi"}], {"data_sources": [{"type": "x"}]}, None, False),
    ("a plain base URL", [{"role": "user", "content": "hi"}], {}, "https://r.openai.azure.com/openai", False),
    ("text parts", [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], {}, None, True),
    ("an image", [{"role": "user", "content": [IMAGE]}], {}, None, True),
    ("enhancements", [{"role": "user", "content": "hi"}], {"enhancements": {"ocr": {"enabled": True}}}, None, True),
    ("dataSources", [{"role": "user", "content": "hi"}], {"dataSources": []}, None, True),
    ("an /extensions base", [{"role": "user", "content": "hi"}], {}, "https://r.openai.azure.com/openai/deployments/d/extensions", True),
]  # fmt: skip


def _through_wrapper(request: ChatRequest, connection: Connection) -> Any:
    gen = plugin.transform_request(ROUTE, request, connection)
    next(gen)
    try:
        gen.send(BUILT)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the wrapper yielded twice")


@pytest.mark.parametrize(("name", "messages", "params", "base_url", "active"), CASES, ids=[c[0] for c in CASES])
def test_the_check_turns_down_only_what_the_wrapper_passes_through(
    name: str, messages: list[dict[str, Any]], params: dict[str, Any], base_url: str | None, active: bool
) -> None:
    request = ChatRequest(messages=messages, params=params)
    connection = Connection(base_url=base_url)
    assert plugin._may_apply(request, connection) is active
    if not active:  # the promise: what it turns down, the wrapper hands back as it got it
        assert _through_wrapper(request, connection) is BUILT
    caller = get_plugins().hook.transform_request
    plan = _plan(caller, caller.get_hookimpls(), True)  # the pipeline's plan for the hook
    steps = _active(plan.for_route("azure", "chat"), plan.gates, {"route": ROUTE, "request": request, "connection": connection}, None)
    assert (plugin.transform_request in [function for function, _, _ in steps]) is active
