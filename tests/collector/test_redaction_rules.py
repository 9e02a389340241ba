"""The redaction table (collector.redact, docs/redaction.md): every secret-text rule and secret key
with the forms it must catch and the text it must leave alone; objects of any kind go through the
same rules once stringified; the docs list exactly the rules the code has."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import httpx
import orjson
import pytest

import collector
from collector.redact import AUTH_SCHEMES, DEFAULT_KEYS, REDACTED, RULES, TOKEN_SCHEMES, Redactor
from tests.collector.conftest import assert_ecs

R = REDACTED
DOC = Path(__file__).resolve().parents[2] / "docs" / "redaction.md"

TEXT = [
    # url credentials
    ("postgres://admin:hunter2@db:5432/app", f"postgres://admin:{R}@db:5432/app"),
    ("redis://:p@ss@h:6379/0", f"redis://:{R}@h:6379/0"),
    ("amqp://u:pa:ss@rabbit/vh", f"amqp://u:{R}@rabbit/vh"),
    ("mongodb+srv://app:s3cr%40t@cluster0.example.net/db", f"mongodb+srv://app:{R}@cluster0.example.net/db"),
    ("https://example.com/path?q=a@b", "https://example.com/path?q=a@b"),
    ("https://user@example.com/", "https://user@example.com/"),
    # cookie header
    ("Cookie: sid=1; theme=dark", f"Cookie: {R}"),
    ("set-cookie: sid=abc; Path=/; HttpOnly", f"set-cookie: {R}"),
    # secret assignment
    ("password=hunter2 user=ann", f"password={R} user=ann"),
    ("login failed: Password: hunter2", f"login failed: Password: {R}"),
    ('{"password": "hunter 2", "user": "ann"}', f'{{"password": "{R}", "user": "ann"}}'),
    ("secret='a b c' next", f"secret='{R}' next"),
    ("PGPASSWORD=s3 psql -h db", f"PGPASSWORD={R} psql -h db"),
    ("GET /x?user=a&access_token=abc123&page=2", f"GET /x?user=a&access_token={R}&page=2"),
    ("x-api-key: k9", f"x-api-key: {R}"),
    ("Authorization: ApiKey abc123def", f"Authorization: ApiKey {R}"),
    ("authorization=Token 9f86d081", f"authorization=Token {R}"),
    ("Authorization: hunter2", f"Authorization: {R}"),
    ("AUTHORIZATION: BASIC dXNlcjpwYXNz", f"AUTHORIZATION: BASIC {R}"),
    ("proxy-authorization: Negotiate YIIG", f"proxy-authorization: Negotiate {R}"),
    ("user_id=42 path=/login", "user_id=42 path=/login"),
    # auth scheme
    ("auth with BeArEr sk-live-1 ok", f"auth with BeArEr {R} ok"),
    ("Basic dXNlcjpwYXNz", f"Basic {R}"),
    ("digest username", f"digest {R}"),
    # token scheme
    ("sent Token 9f86d081884c7d659a2f", f"sent Token {R}"),
    ("ApiKey k-123 used", f"ApiKey {R} used"),
    ("token expired for user 42", "token expired for user 42"),
    ("Mutual agreement", "Mutual agreement"),
    # jwt
    ("id eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", f"id {R} end"),
    # nothing to hide
    ("user ann logged in at 12:30:00 from 10.0.0.1", "user ann logged in at 12:30:00 from 10.0.0.1"),
]


@pytest.mark.parametrize(("text", "expected"), TEXT)
def test_text_rules(text: str, expected: str) -> None:
    red = Redactor()
    assert red.text(text) == expected
    assert red.text(expected) == expected  # idempotent: a library record re-shaped by the ingest API


def test_every_rule_has_cases() -> None:
    by_rule = {name: 0 for name, *_ in RULES}
    comments = Path(__file__).read_text()
    for name in by_rule:
        assert f"    # {name}\n" in comments, f"no cases for rule {name!r}"


@pytest.mark.parametrize("key", [*DEFAULT_KEYS, "DB_PASSWORD", "X-Auth-Token", "session_cookie", "Set-Cookie",
                                 "client_secret", "aws_access_key_id", "ssh_private_key", "PassPhrase"])
def test_secret_keys(key: str) -> None:
    assert Redactor().key_is_secret(key)


@pytest.mark.parametrize("key", ["user_id", "path", "status", "duration", "author", "keyboard"])
def test_ordinary_keys(key: str) -> None:
    assert not Redactor().key_is_secret(key)


def test_configured_keys_apply_to_text_too() -> None:
    red = Redactor(extra_keys=["ssn"])
    assert red.key_is_secret("user_ssn")
    assert red.text("ssn=078-05-1120 ok") == f"ssn={R} ok"


def test_the_docs_table_lists_every_rule_key_and_scheme() -> None:
    doc = DOC.read_text()
    for name, *_ in RULES:
        assert re.search(rf"^\| {re.escape(name)} \|", doc, re.M), name
    for word in (*DEFAULT_KEYS, *AUTH_SCHEMES, *TOKEN_SCHEMES):
        assert f"`{word}`" in doc, word


class DbError(Exception):
    pass


@dataclasses.dataclass
class Settings:
    host: str
    password: str


class Dsn:
    def __str__(self) -> str:
        return "mysql://root:toor@db/app"


def test_objects_are_stringified_then_redacted(memlog) -> None:
    log = collector.get_logger("x")
    exc = DbError("could not connect to postgres://admin:hunter2@db:5432/app")
    log.error("db down", err=exc, url=httpx.URL("https://bob:pw123@api.example.com/v1"), dsn=Dsn(),
              cfg=Settings("db", "s3cret-pw"), items=[exc], when=None)
    log.error(exc)  # an exception as the message
    log.info("explicit", ecs={"url": {"full": "redis://:p@ss@cache:6379"}, "user": {"password": "x1"}})
    lines = collector.outputs()["memory"].records
    for secret in (b"hunter2", b"pw123", b"toor", b"s3cret-pw", b"ss@cache", b"x1"):
        assert all(secret not in line for line in lines), secret
    first, second, third = (assert_ecs(line) for line in lines)
    assert first["extra"]["err"] == f"could not connect to postgres://admin:{R}@db:5432/app"
    assert first["extra"]["url"] == f"https://bob:{R}@api.example.com/v1"
    assert first["extra"]["dsn"] == f"mysql://root:{R}@db/app"
    assert f"password='{R}'" in first["extra"]["cfg"]
    assert first["extra"]["items"] == [first["extra"]["err"]] and first["extra"]["when"] is None
    assert second["message"] == first["extra"]["err"]
    assert third["url"] == {"full": f"redis://:{R}@cache:6379"} and third["user"] == {"password": R}


def test_redaction_off_still_renders_any_object() -> None:
    collector.configure(service="api-service", outputs="memory", metrics_interval=0, redact=False)
    try:
        collector.get_logger("x").info("raw", dsn=Dsn())
        assert orjson.loads(collector.outputs()["memory"].records[0])["extra"]["dsn"] == "mysql://root:toor@db/app"
    finally:
        collector.shutdown()
