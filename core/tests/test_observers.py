"""on_success / on_failure observers see each finished call once; a raising observer breaks nothing."""

from __future__ import annotations

import modelyard
import pytest
from modelyard import errors
from modelyard.plugins import reset_plugins
from modelyard.testing import KEY, Emulator, Faults


class Recorder:
    HOOK_API = (1, 0)

    def __init__(self) -> None:
        self.successes: list = []
        self.failures: list = []

    @modelyard.hookimpl
    def on_success(self, event) -> None:  # type: ignore[no-untyped-def]
        self.successes.append(event)

    @modelyard.hookimpl
    def on_failure(self, event) -> None:  # type: ignore[no-untyped-def]
        self.failures.append(event)


class Broken:
    HOOK_API = (1, 0)

    @modelyard.hookimpl
    def on_success(self, event) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("observer bug")


def _call(api_base: str, **kw):
    return modelyard.completion(
        model="azure/gpt-4o", api_base=api_base, api_key=KEY, messages=[{"role": "user", "content": "hi"}], **kw
    )


def test_success_and_failure_events(api_base: str, emulator: Emulator) -> None:
    rec = Recorder()
    reset_plugins(extra=[rec])
    r = _call(api_base)
    [ok] = rec.successes
    assert ok.route.deployment == "gpt-4o" and ok.status_code == 200 and ok.duration > 0
    assert ok.usage["total_tokens"] == r.usage.total_tokens
    emulator.deployments["gpt-4o"].faults = Faults(script=[503])
    with pytest.raises(errors.ServiceUnavailableError):
        _call(api_base, num_retries=0)
    [bad] = rec.failures
    assert isinstance(bad.error, errors.ServiceUnavailableError) and bad.status_code == 503


def test_stream_success_reported_after_last_chunk_with_usage(api_base: str, emulator: Emulator) -> None:
    rec = Recorder()
    reset_plugins(extra=[rec])
    stream = _call(api_base, stream=True, stream_options={"include_usage": True})
    assert rec.successes == []
    list(stream)
    [ok] = rec.successes
    assert ok.usage["total_tokens"] > 0


def test_raising_observer_does_not_break_the_call(api_base: str, emulator: Emulator, caplog) -> None:
    reset_plugins(extra=[Broken()])
    assert _call(api_base).choices[0].message.content
    assert "observer" in caplog.text
