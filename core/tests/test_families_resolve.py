"""FamilyRegistry.resolve: segment refinement and base_model pinning, with inline families."""

from __future__ import annotations

import pytest
from modelyard.errors import UnsupportedParamsError
from modelyard.families import Family, FamilyRegistry, ParamRules, apply_rules

REGISTRY = FamilyRegistry(
    [
        Family(name="plain", provider="p", prefix="p/"),
        Family(name="wide", provider="p", prefix="p/", segment="wide", pattern=r"w[0-9]", priority=1),
        Family(name="narrow", provider="p", prefix="p/", pattern=r"w1-small", priority=5, refines="wide"),
        Family(name="other", provider="p", prefix="p/", pattern=r"zz", priority=3),
    ]
)


@pytest.mark.parametrize(
    ("model", "kwargs", "family", "deployment"),
    [
        ("p/w3-dep", {}, "wide", "w3-dep"),
        ("p/w1-small", {}, "narrow", "w1-small"),
        ("p/wide/anything", {}, "wide", "anything"),
        ("p/wide/my-w1-small", {}, "narrow", "my-w1-small"),  # the segment is refined by the name
        ("p/wide/zz", {}, "wide", "zz"),  # only a family that refines 'wide' may replace it
        ("p/wide/x", {"base_model": "p/w1-small"}, "narrow", "x"),
        ("p/prod", {"base_model": "p/w2"}, "wide", "prod"),
        ("p/w3-dep", {"base_model": "p/gpt"}, "plain", "w3-dep"),  # base_model wins over the name
        ("p/wide/my-w1-small", {"family": "other"}, "narrow", "my-w1-small"),  # the segment comes first
        ("p/w1-small", {"family": "wide"}, "wide", "w1-small"),  # a pin is exact: not refined
    ],
)
def test_resolve(model: str, kwargs: dict[str, str], family: str, deployment: str) -> None:
    route, chosen = REGISTRY.resolve(model, **kwargs)
    assert (chosen.name, route.deployment, route.family) == (family, deployment, family)


def test_rules_order_and_errors() -> None:
    fam = Family(
        name="f", provider="p", prefix="p/",
        rules=ParamRules(rename={"a": "b"}, unsupported=frozenset({"u"}), fixed={"t": 1},
                         role_map={"system": "developer"}, defaults={"d": 2}),
    )  # fmt: skip
    messages = [{"role": "system", "content": "x"}]
    out_messages, params = apply_rules(fam, messages, {"a": 1, "t": 1, "d": 3}, drop_params=False, model="p/m")
    assert params == {"b": 1, "t": 1, "d": 3}
    assert out_messages == [{"role": "developer", "content": "x"}] and messages[0]["role"] == "system"
    with pytest.raises(UnsupportedParamsError) as info:
        apply_rules(fam, [], {"t": 0.5}, drop_params=False, model="p/m")
    assert info.value.param == "t" and "only 1 is allowed" in str(info.value)
    assert apply_rules(fam, [], {"t": 0.5, "u": 1}, drop_params=True, model="p/m")[1] == {"d": 2}
    # both the old and the new name: the new one wins, whatever the order
    assert apply_rules(fam, [], {"a": 1, "b": 2}, drop_params=False, model="p/m")[1] == {"b": 2, "d": 2}
    assert apply_rules(fam, [], {"b": 2, "a": 1}, drop_params=False, model="p/m")[1] == {"b": 2, "d": 2}
