"""The ``files_router`` hook: which deployments it takes, and how it spreads uploads."""

from __future__ import annotations

from pathlib import Path

from modelyard.files_router import FilesDeployment
from modelyard.store import Store
from modelyard_azure_batch.balance import BatchDeployment
from modelyard_azure_batch.proxy import BalancedFiles, make_files_router, smooth_weighted


def _d(name: str) -> BatchDeployment:
    return BatchDeployment("group", {"model": f"azure/{name}"}, id=name)


def test_smooth_weighted_alternates_equal_weights_and_honours_ratios() -> None:
    a, b, c = _d("a"), _d("b"), _d("c")
    pick = smooth_weighted({})
    assert [pick([a, b]).id for _ in range(4)] == ["a", "b", "a", "b"]
    pick = smooth_weighted({"a": 2, "b": 1})
    assert [pick([a, b]).id for _ in range(6)] == ["a", "b", "a", "a", "b", "a"]
    pick = smooth_weighted({"a": 5, "b": 1, "c": 1})
    ids = [pick([a, b, c]).id for _ in range(7)]
    assert ids.count("a") == 5 and ids.count("b") == 1 and ids.count("c") == 1
    assert ids[:2] != ["a", "a"] or ids[2] != "a"  # smooth: "a" is interleaved, not sent in one burst


def test_the_hook_takes_azure_deployments_only(tmp_path: Path) -> None:
    with Store(path=tmp_path / "s.db") as store:
        other = FilesDeployment(id="x", model_name="g", model="openai/gpt-4o-mini")
        assert make_files_router([other], store) is None
        mine = FilesDeployment(id="east", model_name="g", model="azure/batch-east",
                               params={"api_base": "http://127.0.0.1:1", "api_key": "secret-key-123"})  # fmt: skip
        router = make_files_router([other, mine], store)
        assert isinstance(router, BalancedFiles)
        assert [d.id for d in router.balancer.deployments] == ["east"]
        assert router.balancer.serves("g") and router.balancer.serves("batch-east") and not router.balancer.serves("h")
        assert "secret-key-123" not in repr(mine) and "api_key" not in repr(mine)
