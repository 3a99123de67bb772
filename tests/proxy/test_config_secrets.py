"""Config reprs mask secret-named keys the config does not declare, at any depth."""

from __future__ import annotations

from modelyard.proxy import parse_config


def test_undeclared_secret_keys_are_masked_in_reprs() -> None:
    search = {"type": "azure_search", "parameters": {
        "endpoint": "https://s.example", "authentication": {"type": "api_key", "key": "search-key-0002"}}}  # fmt: skip
    config = parse_config({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "azure/m", "api_key": "k-declared-0001",
                                                              "data_sources": [search]}}],
        "router_settings": {"redis_password": "redis-pass-0003", "redis_host": "cache.example"},
        "general_settings": {"master_key": "sk-master-key-0004-long-enough", "alerting_token": "tok-0005"},
    })  # fmt: skip
    shown = repr(config) + str(config)
    for secret in ("k-declared-0001", "search-key-0002", "redis-pass-0003", "sk-master-key-0004", "tok-0005"):
        assert secret not in shown
    assert "cache.example" in shown and "https://s.example" in shown
    # only the reprs mask: the values are intact
    settings = config.router_settings
    assert settings.redis_password is not None and settings.redis_password.get_secret_value() == "redis-pass-0003"
    assert settings.redis_host == "cache.example"
    assert config.general_settings.model_extra == {"alerting_token": "tok-0005"}
