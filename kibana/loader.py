"""Loads the bundle into a running Kibana: waits for it, imports the saved objects with overwrite,
then creates or updates the connectors and rules under their fixed ids. Any error is fatal: an
import answering 200 with `success: false` or `errors` raises LoadError."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx

import collector
from kibana import bundle
from kibana.bundle import Obj
from kibana.config import KibanaSettings

log = collector.get_logger("kibana.loader")

READY_LEVELS = {"available", "degraded"}  # 8.x status levels that still serve the APIs we call
READY_STATES = {"green", "yellow"}  # 7.x


class LoadError(RuntimeError):
    """Loading failed; the message says what Kibana answered."""


def client(settings: KibanaSettings) -> httpx.AsyncClient:
    headers = {"kbn-xsrf": "true"}
    auth: httpx.BasicAuth | None = None
    api_key = settings.api_key_value()
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    elif settings.username:
        auth = httpx.BasicAuth(settings.username, settings.password_value() or "")
    verify: bool | str = str(settings.ca_file) if settings.ca_file else settings.verify_tls
    return httpx.AsyncClient(base_url=settings.url, headers=headers, auth=auth, verify=verify,
                             timeout=settings.request_timeout_s)


def _detail(response: httpx.Response) -> str:
    text = response.text
    return text if len(text) <= 2000 else text[:2000] + "..."


async def wait_ready(http: httpx.AsyncClient, timeout_s: float) -> dict[str, Any]:
    """GET /api/status until Kibana says it is available; fails at once on 401/403 (bad credentials)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    last = "no answer"
    while True:
        try:
            response = await http.get("/api/status")
            if response.status_code in (401, 403):
                raise LoadError(f"Kibana refused the credentials: HTTP {response.status_code} {_detail(response)}")
            if response.status_code == 200:
                body = response.json()
                overall = body.get("status", {}).get("overall", {})
                level, state = overall.get("level"), overall.get("state")
                if level in READY_LEVELS or state in READY_STATES:
                    if level == "degraded":
                        log.warning("Kibana is degraded; loading anyway", summary=overall.get("summary"))
                    return dict(body)
                last = f"status {level or state}: {overall.get('summary', '')}"
            else:
                last = f"HTTP {response.status_code}"
        except (httpx.TransportError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise LoadError(f"Kibana at {http.base_url} not available after {timeout_s:.0f} s ({last})")
        log.info("waiting for Kibana", url=str(http.base_url), last=last)
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 5.0)


async def import_objects(http: httpx.AsyncClient, settings: KibanaSettings, objects: list[Obj]) -> dict[str, Any]:
    response = await http.post(
        f"{settings.space_prefix}/api/saved_objects/_import", params={"overwrite": "true"},
        files={"file": ("elk-pipeline.ndjson", bundle.ndjson(objects), "application/ndjson")},
    )
    if response.status_code != 200:
        raise LoadError(f"import failed: HTTP {response.status_code} {_detail(response)}")
    try:
        result: dict[str, Any] = response.json()
    except ValueError as exc:
        raise LoadError(f"import answered 200 without JSON: {_detail(response)}") from exc
    errors = result.get("errors") or []
    if result.get("success") is not True or errors:
        lines = [f"{e.get('type')}:{e.get('id')} {json.dumps(e.get('error'))}" for e in errors]
        raise LoadError(f"import failed (success={result.get('success')}, {len(errors)} errors): " + "; ".join(lines))
    if result.get("successCount") != len(objects):
        raise LoadError(f"import reported {result.get('successCount')} objects, sent {len(objects)}")
    return result


async def _put_or_create(http: httpx.AsyncClient, path: str, create: Obj, update: Obj, what: str) -> str:
    """POST to create under the fixed id; 409 (exists) -> PUT to update. Returns 'created' or 'updated'."""
    response = await http.post(path, json=create)
    if response.status_code in (200, 201):
        return "created"
    if response.status_code != 409:
        raise LoadError(f"creating {what} failed: HTTP {response.status_code} {_detail(response)}")
    response = await http.put(path, json=update)
    if response.status_code not in (200, 201):
        raise LoadError(f"updating {what} failed: HTTP {response.status_code} {_detail(response)}")
    return "updated"


def connector_bodies(settings: KibanaSettings, connectors: list[Obj]) -> list[Obj]:
    """The connectors to create: server-log always, the webhook only with KIBANA_WEBHOOK_URL."""
    out: list[Obj] = []
    for c in connectors:
        c = copy.deepcopy(c)
        if c["connector_type_id"] == ".webhook":
            if not settings.webhook_url:
                continue
            c["config"]["url"] = settings.webhook_url
            c["config"]["method"] = settings.webhook_method
            if settings.webhook_username:
                c["config"]["hasAuth"] = True
                c["secrets"] = {"user": settings.webhook_username,
                                "password": settings.webhook_password_value() or ""}
        out.append(c)
    return out


def _action(connector: Obj, rule: Obj) -> Obj:
    template = rule["action_template"]
    if connector["connector_type_id"] == ".webhook":
        params: Obj = {"body": json.dumps({
            "rule": {"id": "{{rule.id}}", "name": "{{rule.name}}"}, "alert": {"id": "{{alert.id}}"},
            "group": "{{context.group}}", "message": template["message"], "date": "{{context.date}}",
        })}
    else:
        params = {"level": "warn", "message": template["message"]}
    return {"group": template["group"], "id": connector["id"], "params": params,
            "frequency": {"summary": False, "notify_when": "onActionGroupChange", "throttle": None}}


def rule_bodies(settings: KibanaSettings, rules: list[Obj], connectors: list[Obj]) -> list[tuple[str, Obj, Obj]]:
    """(id, create body, update body) per rule; update bodies leave out what PUT does not accept."""
    out: list[tuple[str, Obj, Obj]] = []
    for rule in rules:
        params = copy.deepcopy(rule["params"])
        if isinstance(params.get("esQuery"), dict):
            params["esQuery"] = json.dumps(params["esQuery"])
        actions = [_action(c, rule) for c in connectors]
        update = {"name": rule["name"], "tags": rule.get("tags", []), "schedule": rule["schedule"],
                  "params": params, "actions": actions}
        create = {**update, "rule_type_id": rule["rule_type_id"], "consumer": rule["consumer"],
                  "enabled": bool(rule.get("enabled", True)) and settings.rules_enabled}
        out.append((str(rule["id"]), create, update))
    return out


async def load(settings: KibanaSettings, root: Path | None = None) -> dict[str, Any]:
    """Everything, in order; a summary of what was done. Raises LoadError on the first failure."""
    root = root or settings.objects_dir
    objects = bundle.build(root)
    from kibana.validate import validate

    problems = validate(objects, bundle.rules(root), bundle.connectors(root))
    if problems:
        raise LoadError("the bundle does not validate: " + "; ".join(problems[:20]))
    summary: dict[str, Any] = {"objects": 0, "connectors": {}, "rules": {}}
    async with client(settings) as http:
        status = await wait_ready(http, settings.wait_timeout_s)
        summary["kibana_version"] = status.get("version", {}).get("number")
        result = await import_objects(http, settings, objects)
        summary["objects"] = result["successCount"]
        log.info("saved objects imported", count=result["successCount"], kibana=summary["kibana_version"])
        connectors = connector_bodies(settings, bundle.connectors(root))
        for c in connectors:
            create = {"name": c["name"], "connector_type_id": c["connector_type_id"], "config": c["config"],
                      "secrets": c["secrets"]}
            update = {"name": c["name"], "config": c["config"], "secrets": c["secrets"]}
            summary["connectors"][c["name"]] = await _put_or_create(
                http, f"{settings.space_prefix}/api/actions/connector/{c['id']}", create, update,
                f"connector {c['name']}")
        for rule_id, create, update in rule_bodies(settings, bundle.rules(root), connectors):
            summary["rules"][create["name"]] = await _put_or_create(
                http, f"{settings.space_prefix}/api/alerting/rule/{rule_id}", create, update, f"rule {create['name']}")
    log.info("Kibana objects loaded", objects=summary["objects"], connectors=len(summary["connectors"]),
             rules=len(summary["rules"]), space=settings.space)
    return summary
