"""Second probe source: the HEALTHCHECK results Docker already computes, read from its socket.

Docker emits `health_status` events only when a container's status changes (after its own
`retries`), while the shipper's state machine counts consecutive results. So events only update
what is known of each container, and every probe round publishes one result per container from
that, exactly like an HTTP probe. A container that dies reads as unhealthy until it starts again
or is removed (a 3 a.m. crash must page; `docker compose down` removes, and stops the reports).
Only reads are made (GET /containers/json, GET /events): the socket can be mounted read-only.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

import collector
from collector.contract.names import service_of

log = collector.get_logger("collector.probe.docker")

COMPOSE_SERVICE = "com.docker.compose.service"
EVENTS = ("health_status", "die", "start", "destroy")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_STATUS_TEXT = re.compile(r"\((healthy|unhealthy|health: starting)\)")


@dataclass
class Container:
    name: str
    service: str
    status: str  # healthy | unhealthy | starting
    reason: str = ""


def _identity(attributes: dict[str, Any], name: Any) -> tuple[str, str] | None:
    """(node, service) from a container's name and compose labels; None when not usable."""
    name = str(name or "").lstrip("/")
    service = attributes.get(COMPOSE_SERVICE)
    service = service if isinstance(service, str) and _NAME.match(service) else None
    if not _NAME.match(name):
        return None
    return name, service or service_of(name)


def from_listing(item: dict[str, Any]) -> Container | None:
    """A container of GET /containers/json, if it has a health check."""
    names = item.get("Names")
    raw_labels = item.get("Labels")
    labels: dict[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
    who = _identity(labels, names[0] if isinstance(names, list) and names else "")
    if who is None:
        return None
    health = item.get("Health")
    status = health.get("Status") if isinstance(health, dict) else None
    if status is None:  # older engines only say it in the status text: "Up 2 minutes (healthy)"
        found = _STATUS_TEXT.search(str(item.get("Status", "")))
        status = found.group(1).replace("health: ", "") if found else None
    if status not in ("healthy", "unhealthy", "starting"):
        return None
    return Container(who[0], who[1], status, "docker health check" if status == "unhealthy" else "")


def apply_event(known: dict[str, Container], event: dict[str, Any]) -> None:
    """Update `known` (by container id) from one /events message; anything unexpected is ignored."""
    actor = event.get("Actor")
    if event.get("Type") != "container" or not isinstance(actor, dict):
        return
    cid, attributes = actor.get("ID"), actor.get("Attributes")
    action = event.get("Action") or event.get("status")
    if not isinstance(cid, str) or not isinstance(attributes, dict) or not isinstance(action, str):
        return
    if action == "destroy":
        known.pop(cid, None)
        return
    if action == "start":  # the next health_status event says how it is; until then it is starting
        if cid in known:
            known[cid].status, known[cid].reason = "starting", ""
        return
    who = _identity(attributes, attributes.get("name"))
    if who is None:
        return
    if action == "die":
        if cid in known:  # only containers with a health check are reported
            code = attributes.get("exitCode", "?")
            known[cid].status, known[cid].reason = "unhealthy", f"container exited (code {str(code)[:8]})"
        return
    status = action.partition(":")[2].strip() if action.startswith("health_status") else ""
    if status in ("healthy", "unhealthy", "starting"):
        known[cid] = Container(who[0], who[1], status, "docker health check" if status == "unhealthy" else "")


class DockerHealth:
    """Keeps `known` current from the Docker socket, reconnecting with backoff, until cancelled."""

    def __init__(self, socket_path: Path, timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self.known: dict[str, Container] = {}
        self.connected = False

    def results(self) -> list[Container]:
        """What each round publishes: every container with a health check that is not still starting."""
        return [c for c in self.known.values() if c.status != "starting"]

    async def run(self) -> None:
        pause = 0.5
        while True:
            try:
                await self._follow()
                raise httpx.RemoteProtocolError("docker closed the event stream")
            except (httpx.HTTPError, OSError, ValueError) as exc:
                if self.connected or pause == 0.5:
                    log.warning("docker socket unavailable; container health unknown until it answers",
                                socket=str(self.socket_path), error=type(exc).__name__)
                self.connected = False
                # stale knowledge would keep reporting a state nobody observes any more
                self.known.clear()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)

    async def _follow(self) -> None:
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket_path))
        timeout = httpx.Timeout(self.timeout_s, read=None)  # the event stream is quiet for long spells
        async with httpx.AsyncClient(transport=transport, base_url="http://docker", timeout=timeout) as client:
            filters = quote(orjson.dumps({"type": ["container"], "event": list(EVENTS)}).decode())
            # subscribe first, then list: a change between the two is seen, not lost
            async with client.stream("GET", f"/events?filters={filters}") as stream:
                stream.raise_for_status()
                listing = await client.get("/containers/json")
                listing.raise_for_status()
                items = listing.json()
                if not isinstance(items, list):
                    raise ValueError("unexpected /containers/json answer")
                self.known = {str(i["Id"]): c for i in items
                              if isinstance(i, dict) and "Id" in i and (c := from_listing(i)) is not None}
                if not self.connected:
                    log.info("following docker health checks", socket=str(self.socket_path),
                             containers=len(self.known))
                self.connected = True
                async for line in stream.aiter_lines():
                    try:
                        event = orjson.loads(line) if line.strip() else None
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(event, dict):
                        apply_event(self.known, event)
