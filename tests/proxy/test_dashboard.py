"""The dashboard's JSON endpoints and its security (issue 16), without a browser.

Sign-in gives an HttpOnly, SameSite=Strict cookie (Secure over TLS); every ``/ui/api`` data
endpoint refuses a request without the session or the master key; a change needs the session's
CSRF token and this origin; no response carries a key or the session token. The figures
(deployments, traffic) are checked against what the emulator was made to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from modelyard.proxy import ProxyApp, parse_config
from modelyard.proxy.ui.traffic import Traffic, bin_of, percentile
from modelyard.testing import Deployment, Emulator, Faults

from .conftest import MASTER_KEY, azure, running_proxy

HELLO = [{"role": "user", "content": "Hello there"}]
STATIC = Path(__file__).parents[2] / "core/src/modelyard/proxy/ui/static"


def pool_config(api_base: str, tmp_path: Path, *names: str, **router: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "pool", "litellm_params": {**azure(api_base, n), "order": i + 1}, "model_info": {"id": n}}
            for i, n in enumerate(names)
        ],
        "router_settings": {"num_retries": 1, **router},
        "modelyard_settings": {"store_path": str(tmp_path / "store.db")},
    }


@pytest.fixture
def pool(api_base: str, emulator: Emulator, tmp_path: Path) -> Iterator[Any]:
    emulator.add_deployment(Deployment("ui-east"))
    emulator.add_deployment(Deployment("ui-west"))
    with running_proxy(pool_config(api_base, tmp_path, "ui-east", "ui-west", cooldown_time=30)) as proxy:
        yield proxy


@contextlib.contextmanager
def signed_in(proxy: Any) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a session cookie, and the session's CSRF token."""
    with httpx.Client(base_url=proxy.url) as client:
        r = client.post("/ui/api/login", json={"key": MASTER_KEY})
        assert r.status_code == 200, r.text
        yield client, r.json()["csrf_token"]


def api_routes(app: ProxyApp) -> list[tuple[str, str]]:
    """Every ``/ui/api`` route but sign-in and the session probe."""
    out = []
    for route in app._routes:
        method, path = route.split(" ", 1)
        if path.startswith("/ui/api/") and path not in ("/ui/api/login", "/ui/api/session"):
            out.append((method, path))
    return out


# ---------------------------------------------------------------------- sign-in and session


def test_sign_in_sets_a_strict_httponly_cookie_and_sign_out_ends_it(pool: Any) -> None:
    with signed_in(pool) as (client, csrf):
        cookie = client.cookies.jar
        [c] = list(cookie)
        assert c.name == "modelyard_ui" and c.path == "/ui"
        assert not c.secure  # plain HTTP here; over TLS it is Secure (next test)
        r = client.get("/ui/api/session")
        assert r.json()["signed_in"] is True and r.json()["csrf_token"] == csrf
        assert client.get("/ui/api/deployments").status_code == 200
        stolen = c.value
        r = client.post("/ui/api/logout", headers={"x-csrf-token": csrf})
        assert r.status_code == 200 and "Max-Age=0" in r.headers["set-cookie"]
        assert client.get("/ui/api/deployments").status_code == 401
    # The signed-out cookie, replayed, is refused too.
    r = httpx.get(f"{pool.url}/ui/api/deployments", headers={"cookie": f"modelyard_ui={stolen}"})
    assert r.status_code == 401
    # A forged or altered cookie is refused.
    sid, expires, _ = stolen.split(".")
    for forged in (f"{sid}.{int(expires) + 10}.{stolen.rsplit('.', 1)[1]}", f"{sid}.{expires}.AAAA", "x"):
        assert httpx.get(f"{pool.url}/ui/api/deployments", headers={"cookie": f"modelyard_ui={forged}"}).status_code == 401


async def test_over_tls_the_cookie_is_secure(api_base: str, emulator: Emulator, tmp_path: Path) -> None:
    app = ProxyApp(parse_config(pool_config(api_base, tmp_path, "gpt-4o")), master_key=MASTER_KEY)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://proxy.example") as client:
        r = await client.post("/ui/api/login", json={"key": MASTER_KEY})
    header = r.headers["set-cookie"]
    assert r.status_code == 200
    for flag in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/ui"):
        assert flag in header


def test_sign_in_refuses_wrong_keys_forms_and_other_sites_and_slows_guessing(pool: Any) -> None:
    with httpx.Client(base_url=pool.url) as client:
        r = client.post("/ui/api/login", json={"key": "sk-not-the-master-key-at-all"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert "set-cookie" not in r.headers
        r = client.post("/ui/api/login", json={})
        assert r.status_code == 400 and r.json()["error"]["param"] == "key"
        # A cross-site HTML form can only send form encodings: refused before the key is read.
        r = client.post("/ui/api/login", data={"key": MASTER_KEY})
        assert r.status_code == 415
        r = client.post("/ui/api/login", json={"key": MASTER_KEY}, headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "set-cookie" not in r.headers
        r = client.post("/ui/api/login", json={"key": MASTER_KEY}, headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        for _ in range(9):
            client.post("/ui/api/login", json={"key": "sk-wrong-guess-0000000000"})
        r = client.post("/ui/api/login", json={"key": MASTER_KEY})
        assert r.status_code == 429 and "retry-after" in r.headers  # even the right key, for a while


def test_every_data_endpoint_refuses_without_the_session_or_the_master_key(pool: Any) -> None:
    routes = api_routes(pool.app)
    assert {p for _, p in routes} >= {"/ui/api/deployments", "/ui/api/traffic", "/ui/api/keys", "/ui/api/logout",
                                      "/ui/api/keys/delete", "/ui/api/teams"}  # fmt: skip
    with httpx.Client(base_url=pool.url) as client:
        virtual = client.post("/key/generate", json={}, headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["key"]
        for method, path in routes:
            for headers in ({}, {"authorization": "Bearer sk-wrong-wrong-wrong-wrong"}, {"authorization": f"Bearer {virtual}"},
                            {"cookie": "modelyard_ui=forged.1999999999.c2lnbmF0dXJl"}):  # fmt: skip
                r = client.request(method, path, json={}, headers=headers)
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["type"] == "authentication_error"
            # Scripts may use the master key instead of a session (no CSRF token needed: no page can send it).
            if method == "GET":
                r = client.get(path, headers={"authorization": f"Bearer {MASTER_KEY}"})
                assert r.status_code == 200, (path, r.text)


def test_a_change_without_the_csrf_token_or_from_another_site_is_refused(pool: Any) -> None:
    with signed_in(pool) as (client, csrf):
        before = client.get("/ui/api/keys").json()["total_keys"]
        cases = [
            {},  # a cross-site form post carries the cookie at most: no token
            {"x-csrf-token": "not-the-token"},
            {"x-csrf-token": csrf, "origin": "https://evil.example"},
            {"x-csrf-token": csrf, "sec-fetch-site": "cross-site"},
        ]
        for headers in cases:
            r = client.post("/ui/api/keys", json={"key_alias": "csrf"}, headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed", headers
        assert client.get("/ui/api/keys").json()["total_keys"] == before  # nothing was made
        # The same request with the token, from this origin, is done.
        r = client.post("/ui/api/keys", json={"key_alias": "csrf"},
                        headers={"x-csrf-token": csrf, "origin": pool.url, "sec-fetch-site": "same-origin"})  # fmt: skip
        assert r.status_code == 200 and r.json()["key"].startswith("sk-")
        assert r.headers["cache-control"] == "no-store"
        assert client.get("/ui/api/keys").json()["total_keys"] == before + 1


def test_pages_and_answers_carry_no_key_or_session_token_and_load_nothing_from_elsewhere(pool: Any) -> None:
    with signed_in(pool) as (client, csrf):
        session = client.cookies["modelyard_ui"]
        made = client.post("/ui/api/keys", json={"key_alias": "scan", "max_budget": 5}, headers={"x-csrf-token": csrf}).json()
        new_key = made["key"]
        openai.OpenAI(base_url=f"{pool.url}/v1", api_key=new_key, max_retries=0).chat.completions.create(
            model="pool", messages=HELLO
        )
        bodies = []
        for path in ["/ui", *(f"/ui/static/{p.name}" for p in STATIC.iterdir())]:
            r = client.get(path)
            assert r.status_code == 200
            bodies.append(r.text)
            for name, value in (("content-security-policy", "script-src 'self'"), ("x-frame-options", "DENY")):
                assert value in r.headers[name]
        for method, path in api_routes(pool.app):
            if method == "GET":
                r = client.get(path)
                assert r.status_code == 200
                bodies.append(r.text + repr(r.headers))
        text = "\n".join(bodies)
        for secret in (MASTER_KEY, new_key, session, session.rsplit(".", 1)[1]):
            assert secret not in text
        keys = client.get("/ui/api/keys").json()["keys"]
        assert [k["key_name"] for k in keys if k["key_alias"] == "scan"] == [f"sk-...{new_key[-4:]}"]
    # Offline: the page names no other host (uPlot's source comment and SVG's namespace aside).
    page = (STATIC / "index.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    script = (STATIC / "app.js").read_text()
    assert "http" not in script and "localStorage" not in script and "sessionStorage" not in script


def test_the_first_view_is_well_under_200_kb(pool: Any) -> None:
    page = (STATIC / "index.html").read_text()
    assets = re.findall(r"(?:src|href)=\"(/ui/static/[^\"]+)\"", page)
    assert len(assets) == 4
    with httpx.Client(base_url=pool.url, headers={"accept-encoding": "gzip"}) as client:
        sizes = {}
        for path in ["/ui", *assets]:
            r = client.get(path)
            assert r.status_code == 200
            sizes[path] = int(r.headers["content-length"])
            assert r.headers.get("content-encoding") == "gzip"
            etag = r.headers["etag"]
            again = client.get(path, headers={"if-none-match": etag})
            assert again.status_code == 304 and again.content == b""
    assert sum(sizes.values()) < 60_000, sizes  # about 30 kB gzipped; uncompressed under 100 kB too
    assert sum(len((STATIC / p.rsplit("/", 1)[1]).read_bytes()) for p in ["/index.html", *assets]) < 100_000


# ---------------------------------------------------------------------- figures


def test_deployments_show_both_of_a_group_and_a_429_cooling_one_down(pool: Any, emulator: Emulator) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    client = openai.OpenAI(base_url=f"{pool.url}/v1", api_key=MASTER_KEY, max_retries=0)
    client.chat.completions.create(model="pool", messages=HELLO)
    data = httpx.get(f"{pool.url}/ui/api/deployments", headers=headers).json()
    [group] = data["groups"]
    rows = {d["id"]: d for d in group["deployments"]}
    assert set(rows) == {"ui-east", "ui-west"}
    assert rows["ui-east"]["status"] == "healthy" and rows["ui-east"]["priority"] == 1 and rows["ui-west"]["priority"] == 2
    assert rows["ui-east"]["mode"] == "chat"
    quota = rows["ui-east"]["quota"]  # the emulator's x-ratelimit-remaining-* of that call
    assert quota["remaining_requests"] == 100_000 - 1 and quota["remaining_tokens"] < 100_000_000
    assert quota["requests_fraction"] == 1.0  # the highest reading seen is the full bar
    assert rows["ui-west"]["quota"] is None  # never called (priority 2)
    emulator.deployments["ui-east"].faults = Faults(script=[429], retry_after=30)
    client.chat.completions.create(model="pool", messages=HELLO)  # ui-east 429s, ui-west answers
    rows = {d["id"]: d for d in httpx.get(f"{pool.url}/ui/api/deployments", headers=headers).json()["groups"][0]["deployments"]}
    assert rows["ui-east"]["status"] == "cooling_down" and 25 < rows["ui-east"]["cooldown_remaining_s"] <= 30
    assert rows["ui-east"]["quota"]["remaining_requests"] == 100_000 - 1  # the Router reads quota from answers, not 429s
    assert rows["ui-west"]["status"] == "healthy" and rows["ui-west"]["quota"]["remaining_requests"] == 100_000 - 1
    plugins = {p["distribution"]: p for p in data["plugins"]}
    assert plugins["modelyard-azure-chat"]["status"] == "loaded" and plugins["modelyard-azure-chat"]["version"]


def test_traffic_counts_requests_errors_and_latency_per_group(pool: Any, emulator: Emulator) -> None:
    client = openai.OpenAI(base_url=f"{pool.url}/v1", api_key=MASTER_KEY, max_retries=0)
    for _ in range(8):
        client.chat.completions.create(model="pool", messages=HELLO)
    emulator.deployments["ui-east"].faults = Faults(latency=0.2, error_rate=1.0, error_status=500)
    emulator.deployments["ui-west"].faults = Faults(latency=0.2, error_rate=1.0, error_status=500)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="pool", messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-group", messages=HELLO)  # not counted: not a group
    time.sleep(1.1)  # the newest second is still filling
    r = httpx.get(f"{pool.url}/ui/api/traffic", params={"minutes": 1}, headers={"authorization": f"Bearer {MASTER_KEY}"})
    data = r.json()
    assert data["source"] == "local" and list(data["groups"]) == ["pool"]
    g = data["groups"]["pool"]
    assert g["requests"] == 10 and g["errors"] == 2
    assert g["p99_ms_total"] >= 350  # two tries of 200 ms each
    assert g["p50_ms_total"] < 200
    assert len(data["times"]) == 12 and sum(g["rps"]) * 5 == pytest.approx(10)
    r = httpx.get(f"{pool.url}/ui/api/traffic", params={"minutes": 99}, headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "minutes"


def test_percentiles_from_the_histogram_are_within_ten_percent() -> None:
    import random

    rng = random.Random(7)
    samples = [rng.lognormvariate(-3, 1) for _ in range(5000)]
    hist = [0] * 64
    for s in samples:
        hist[bin_of(s)] += 1
    exact = sorted(samples)
    for q in (0.5, 0.9, 0.99):
        want = exact[int(q * len(exact)) - 1] * 1000
        assert percentile(hist, q) == pytest.approx(want, rel=0.1)
    assert percentile([0] * 64, 0.5) is None
    assert bin_of(0.0) == 0 and bin_of(10_000.0) == 63


def test_the_request_path_pays_one_append() -> None:
    traffic = Traffic(["a"])
    # No Python frame on the request path: record is the queue's own (C) append, and nothing is
    # counted until the fold, off the request path. (Not timed: timings move with the machine.)
    assert isinstance(traffic.record, types.BuiltinMethodType)
    for i in range(100_000):
        traffic.record((1.0e9 + i / 1000, "a", "d", 200, 0.01))
    assert traffic._buckets == {} and len(traffic._queue) == 100_000
    traffic.fold(now=1.0e9 + 100)
    assert sum(b["a"].requests for b in traffic._buckets.values()) == 100_000


def test_traffic_through_redis_sums_every_instance(api_base: str, emulator: Emulator, fresh_redis: Any, tmp_path: Path) -> None:
    emulator.add_deployment(Deployment("ui-east"))
    config = pool_config(api_base, tmp_path, "ui-east", redis_url=fresh_redis.url)
    with running_proxy(config) as one, running_proxy(config) as two:
        for proxy, n in ((one, 3), (two, 4)):
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
            for _ in range(n):
                client.chat.completions.create(model="pool", messages=HELLO)
        time.sleep(2.2)  # each instance folds and pushes once a second
        headers = {"authorization": f"Bearer {MASTER_KEY}"}
        seen = [httpx.get(f"{p.url}/ui/api/traffic", params={"minutes": 1}, headers=headers).json() for p in (one, two)]
    for data in seen:
        assert data["source"] == "redis"
        assert data["groups"]["pool"]["requests"] == 7


def test_the_docs_show_every_view() -> None:
    page = (Path(__file__).parents[2] / "docs/dashboard.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\((img/dashboard-[a-z]+\.png)\)", page)
    assert sorted(images) == ["img/dashboard-deployments.png", "img/dashboard-keys.png", "img/dashboard-signin.png",
                              "img/dashboard-spend.png", "img/dashboard-traffic.png"]  # fmt: skip
    for image in images:
        assert (Path(__file__).parents[2] / "docs" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_disable_admin_ui_turns_it_off(api_base: str, emulator: Emulator, tmp_path: Path) -> None:
    config = pool_config(api_base, tmp_path, "gpt-4o")
    config["general_settings"] = {"disable_admin_ui": True}
    with running_proxy(config) as proxy:
        auth = {"authorization": f"Bearer {MASTER_KEY}"}
        for path in ("/ui", "/ui/api/deployments", "/ui/static/app.js"):
            assert httpx.get(f"{proxy.url}{path}", headers=auth).status_code == 404
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=MASTER_KEY, max_retries=0)
        assert client.chat.completions.create(model="pool", messages=HELLO).choices
        assert proxy.app.ui is None


async def test_the_first_requests_to_the_key_store_at_once_all_succeed(api_base: str, emulator: Emulator, tmp_path: Path) -> None:
    # The keys view lists keys while the operator already creates a team: both open the store.
    import asyncio

    with running_proxy(pool_config(api_base, tmp_path, "gpt-4o")) as proxy:
        auth = {"authorization": f"Bearer {MASTER_KEY}"}
        async with httpx.AsyncClient(base_url=proxy.url, headers=auth) as client:
            answers = await asyncio.gather(
                *(client.get("/ui/api/keys") for _ in range(4)),
                *(client.post("/ui/api/teams", json={"team_alias": f"t{i}"}) for i in range(4)),
            )
    assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers if r.status_code != 200]


def test_without_a_master_key_in_development_sign_in_still_gives_a_session(api_base: str, emulator: Emulator, tmp_path: Path) -> None:
    # --dev without a key: the proxy authenticates nothing, but the page still works through a
    # session, so another site's page cannot make the browser change anything (no CSRF token).
    config = pool_config(api_base, tmp_path, "gpt-4o")
    with running_proxy(config, master_key=None, dev=True) as proxy, httpx.Client(base_url=proxy.url) as client:
        assert client.get("/ui/api/session").json() == {"signed_in": False, "auth": False}
        assert client.get("/ui/api/deployments").status_code == 401
        r = client.post("/ui/api/login", json={"key": ""})
        assert r.status_code == 200
        assert client.get("/ui/api/deployments").status_code == 200
        assert client.post("/ui/api/teams", json={"team_alias": "x"}).status_code == 403
        assert client.get("/ui/api/keys").json()["available"] is False


def test_spend_totals_by_model_deployment_key_and_day(api_base: str, emulator: Emulator, tmp_path: Path) -> None:
    emulator.add_deployment(Deployment("ui-east"))
    config = pool_config(api_base, tmp_path, "ui-east")
    config["model_list"][0]["litellm_params"].update(input_cost_per_token=1e-03, output_cost_per_token=2e-03)
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, headers={"authorization": f"Bearer {MASTER_KEY}"}) as h:
        made = h.post("/ui/api/keys", json={"key_alias": "reporting"}).json()
        for key, n in ((MASTER_KEY, 2), (made["key"], 3)):
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
            for _ in range(n):
                client.chat.completions.create(model="pool", messages=HELLO)
        data = h.get("/ui/api/spend").json()  # the last 7 days
        report = h.get("/spend/report", params={"group_by": "api_key"}).json()
        bad = h.get("/ui/api/spend", params={"start_date": "yesterday"})
        backwards = h.get("/ui/api/spend", params={"start_date": "2026-12-06", "end_date": "2026-12-01"})
        old = h.get("/ui/api/spend", params={"start_date": "2020-01-01", "end_date": "2020-01-31"}).json()
    assert data["total"]["requests"] == 5 and data["total"]["spend"] == pytest.approx(report["total_spend"])
    assert [(r["name"], r["requests"]) for r in data["by_model"]] == [("pool", 5)]
    assert [(r["name"], r["requests"]) for r in data["by_deployment"]] == [("ui-east", 5)]
    assert sorted((r["name"], r["requests"]) for r in data["by_key"]) == [("master key", 2), ("reporting", 3)]
    assert [r["requests"] for r in data["by_day"]] == [5] and data["by_day"][0]["spend"] > 0
    assert made["key"] not in str(data)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "start_date"
    assert backwards.status_code == 400
    assert old["total"] == {"spend": 0.0, "requests": 0} and old["by_model"] == []


def test_a_bucket_counts_past_sixteen_bits() -> None:
    # Ten minutes of buckets are kept per model group, so their histograms are arrays of 32-bit
    # counts rather than lists of ints (bench/README.md, "rss2"): no count may wrap.
    traffic = Traffic(["a"])
    for _ in range(70_000):
        traffic.record((1.0e9 + 0.5, "a", "d", 200, 0.01))
    traffic.fold(now=1.0e9 + 1)
    g = asyncio.run(traffic.series(seconds=60, step=5, now=1.0e9 + 2))["groups"]["a"]
    hist = [0] * 64
    hist[bin_of(0.01)] = 70_000
    assert g["requests"] == 70_000 and sum(g["rps"]) * 5 == 70_000
    assert g["p50_ms_total"] == g["p99_ms_total"] == percentile(hist, 0.5)
