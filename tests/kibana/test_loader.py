"""The loader against a stand-in Kibana on loopback: the requests it sends (multipart `file` field,
kbn-xsrf, basic and ApiKey auth, overwrite, fixed ids) and that any import error fails the load."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kibana import bundle
from kibana.__main__ import main
from kibana.config import KibanaSettings
from kibana.loader import LoadError, load
from tests.kibana.fake_kibana import FakeKibana

N_OBJECTS = len(bundle.build())
RULE_IDS = {r["id"] for r in bundle.rules()}
SERVER_LOG, WEBHOOK = (next(c["id"] for c in bundle.connectors() if c["connector_type_id"] == t)
                       for t in (".server-log", ".webhook"))


@pytest.fixture
def kibana() -> Iterator[FakeKibana]:
    fake = FakeKibana(user="elastic", password="s3cret").start()
    yield fake
    fake.stop()


@pytest.fixture
def keyed() -> Iterator[FakeKibana]:
    fake = FakeKibana(api_key="aWQ6a2V5").start()
    yield fake
    fake.stop()


def settings(fake: FakeKibana, **extra: object) -> KibanaSettings:
    base: dict[str, object] = {"url": fake.url, "wait_timeout_s": 5}
    if fake.user:
        base.update(username=fake.user, password=fake.password)
    if fake.api_key:
        base.update(api_key=fake.api_key)
    base.update(extra)
    return KibanaSettings(**base)  # type: ignore[arg-type]


def run(s: KibanaSettings) -> dict[str, Any]:
    return asyncio.run(load(s))


def test_basic_auth_load_sends_what_kibana_needs(kibana: FakeKibana) -> None:
    summary = run(settings(kibana))
    assert summary["objects"] == N_OBJECTS
    assert summary["connectors"] == {"elk: server log": "created"}  # no webhook without a URL
    assert set(summary["rules"].values()) == {"created"}
    assert kibana.problems == []
    token = base64.b64encode(b"elastic:s3cret").decode()
    assert all(r.headers.get("Authorization") == f"Basic {token}" for r in kibana.requests)
    assert all(r.headers.get("kbn-xsrf") == "true" for r in kibana.requests)
    imports = [r for r in kibana.requests if r.path == "/api/saved_objects/_import"]
    assert len(imports) == 1 and imports[0].query == {"overwrite": "true"}
    filename, data = imports[0].files["file"]
    assert filename and filename.endswith(".ndjson")
    assert bundle.parse_ndjson(data) == bundle.build()
    assert set(kibana.connectors) == {SERVER_LOG}
    assert set(kibana.rules) == RULE_IDS
    for rule in kibana.rules.values():
        assert [a["id"] for a in rule["actions"]] == [SERVER_LOG]
        assert rule["consumer"] == "stackAlerts" and rule["enabled"] is True
        if rule["rule_type_id"] == ".es-query":
            assert isinstance(rule["params"]["esQuery"], str)  # Kibana wants the query as a JSON string


def test_second_load_updates_in_place(kibana: FakeKibana) -> None:
    run(settings(kibana))
    before = len(kibana.requests)
    summary = run(settings(kibana))
    assert summary["connectors"] == {"elk: server log": "updated"}
    assert set(summary["rules"].values()) == {"updated"}
    puts = [r for r in kibana.requests[before:] if r.method == "PUT"]
    assert len(puts) == 1 + len(RULE_IDS)
    assert set(kibana.rules) == RULE_IDS and set(kibana.connectors) == {SERVER_LOG}
    assert kibana.problems == []


def test_api_key_auth(keyed: FakeKibana) -> None:
    run(settings(keyed))
    assert all(r.headers.get("Authorization") == "ApiKey aWQ6a2V5" for r in keyed.requests)
    assert set(keyed.rules) == RULE_IDS


def test_bad_credentials_fail_at_once(keyed: FakeKibana) -> None:
    with pytest.raises(LoadError, match="refused the credentials"):
        run(settings(keyed, api_key="d3Jvbmc6a2V5"))
    assert len(keyed.requests) == 1


@pytest.mark.parametrize(("mode", "message"), [
    ("errors", "missing_references"),
    ("success_false", "success=False"),
    ("success_with_errors", "1 errors"),
    ("partial_count", "import reported"),
    ("http500", "HTTP 500"),
    ("not_json", "without JSON"),
])
def test_import_errors_fail_loudly_even_with_http_200(kibana: FakeKibana, mode: str, message: str) -> None:
    kibana.import_mode = mode
    with pytest.raises(LoadError, match=message):
        run(settings(kibana))
    assert kibana.connectors == {} and kibana.rules == {}  # nothing after a failed import


def test_webhook_connector_when_url_configured(kibana: FakeKibana) -> None:
    run(settings(kibana, webhook_url="https://hooks.example.test/elk", webhook_username="hook",
                 webhook_password="pw"))
    assert set(kibana.connectors) == {SERVER_LOG, WEBHOOK}
    hook = kibana.connectors[WEBHOOK]
    assert hook["config"]["url"] == "https://hooks.example.test/elk"
    assert hook["config"]["hasAuth"] is True and hook["secrets"] == {"user": "hook", "password": "pw"}
    for rule in kibana.rules.values():
        assert sorted(a["id"] for a in rule["actions"]) == sorted([SERVER_LOG, WEBHOOK])


def test_space_prefixes_every_api_path(kibana: FakeKibana) -> None:
    run(settings(kibana, space="ops"))
    api = [r.path for r in kibana.requests if r.path != "/api/status"]
    assert api and all(p.startswith("/s/ops/api/") for p in api)


def test_waits_until_kibana_is_available(kibana: FakeKibana) -> None:
    kibana.not_ready = 3
    run(settings(kibana))
    assert [r.path for r in kibana.requests[:4]] == ["/api/status"] * 4


def test_gives_up_when_kibana_never_becomes_available(kibana: FakeKibana) -> None:
    kibana.status_level = "unavailable"
    with pytest.raises(LoadError, match="not available after"):
        run(settings(kibana, wait_timeout_s=1))
    assert not any(r.path.endswith("_import") for r in kibana.requests)


def test_cli_load_exit_codes(kibana: FakeKibana, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("KIBANA_URL", kibana.url)
    monkeypatch.setenv("KIBANA_USERNAME", "elastic")
    monkeypatch.setenv("KIBANA_PASSWORD_FILE", str(secret))
    assert main(["load"]) == 0
    kibana.import_mode = "errors"
    assert main([]) == 1
    monkeypatch.setenv("KIBANA_API_KEY", "both-kinds-of-auth")
    assert main([]) == 2  # invalid settings: nothing sent


def test_cli_validate_and_bundle(tmp_path: Path) -> None:
    out = tmp_path / "bundle.ndjson"
    for args in (["validate"], ["bundle", "-o", str(out)]):
        done = subprocess.run([sys.executable, "-m", "kibana", *args], capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert bundle.parse_ndjson(out.read_bytes()) == bundle.build()


def test_settings_reject_conflicting_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="not both"):
        KibanaSettings(username="u", password="p", api_key="k")
    with pytest.raises(ValueError, match="needs KIBANA_USERNAME"):
        KibanaSettings(password="p")
    with pytest.raises(ValueError, match="http"):
        KibanaSettings(url="kibana:5601")
    monkeypatch.setenv("KIBANA_SPACE", "Ops")
    monkeypatch.setenv("KIBANA_WEBHOOK_URL", "http://hook")
    s = KibanaSettings()
    assert s.space_prefix == "/s/ops" and s.webhook_url == "http://hook"
    monkeypatch.setenv("KIBANA_WEBHOOK_URL", "")  # compose's `${ALERT_WEBHOOK_URL:-}`
    assert KibanaSettings().webhook_url is None
