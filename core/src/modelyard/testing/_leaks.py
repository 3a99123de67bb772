"""``pytest --modelyard-leaks``: garbage collected after every test, and what it finalises
unclosed reported at that test (see pytest_plugin).

An object left unclosed in a reference cycle (a client holding its socket, a stream holding its
client) is finalised whenever the cycle collector next runs: during some later test, whose run
then shows a ``ResourceWarning`` (or, under ``filterwarnings = error``, fails) for a socket it
never opened. Collecting after each test's teardown moves the report to the test that dropped
the object, as an error at its teardown. With ``PYTHONTRACEMALLOC=N`` set, the report also gives
where the object was allocated.

A collection per test costs tens of milliseconds in a large process, which is why this is an
option for hunting a leak, not a default.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import warnings
from collections.abc import Generator
from typing import Any

import pytest


def collect_leaks() -> list[str]:
    """Run the cycle collector; describe every warning and ignored exception its finalisers raised."""
    found: list[str] = []
    previous = sys.unraisablehook

    def unraisable(info: Any) -> None:
        found.append(f"{info.err_msg or 'Exception ignored in'}: {info.object!r}: {info.exc_value!r}")

    sys.unraisablehook = unraisable
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
    finally:
        sys.unraisablehook = previous
    for warning in caught:
        text = f"{warning.category.__name__}: {warning.message}"
        source = warning.source
        allocated = tracemalloc.get_object_traceback(source) if source is not None else None
        if allocated is not None:
            text += "\n  allocated at (most recent call last):\n" + "\n".join(allocated.format())
        found.append(text)
    return found


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    """After the test's own teardown (its fixtures closed): collect, and fail on what was left."""
    result = yield
    leaks = collect_leaks()
    if leaks:
        pytest.fail(f"{item.nodeid} left {len(leaks)} object(s) unclosed in garbage:\n" + "\n".join(leaks), pytrace=False)
    return result
