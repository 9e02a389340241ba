"""`/health` for FastAPI/ASGI services, shaped like the seed's Express endpoint.

200 {"status": "healthy", "service", "timestamp", "uptime", "checks": {...}} when every check
passes, 503 {"status": "unhealthy", ..., "error"} otherwise. A check is a sync or async
callable (e.g. `SELECT 1`, Redis `PING`); it fails by raising, returning False, or timing out.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

from collector.contract.health import HEALTHY, UNHEALTHY
from collector.contract.timefmt import now_iso
from collector.extras import require
from collector.state import STATE

Check = Callable[[], Any]
_STARTED = time.monotonic()


async def _run_check(check: Check, limit: float) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(check):
            result = await asyncio.wait_for(check(), limit)
        else:
            result = await asyncio.wait_for(asyncio.to_thread(check), limit)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, limit)
        ok = result is not False
        out: dict[str, Any] = {"status": HEALTHY if ok else UNHEALTHY}
        if not ok:
            out["error"] = "check returned False"
    except TimeoutError:
        out = {"status": UNHEALTHY, "error": f"timed out after {limit}s"}
    except Exception as exc:
        out = {"status": UNHEALTHY, "error": f"{type(exc).__name__}: {exc}"}
    out["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return out


async def health_report(checks: Mapping[str, Check], limit: float = 5.0,
                        service: str | None = None) -> tuple[int, dict[str, Any]]:
    """(status code, body). Checks run concurrently, each under `limit` seconds."""
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[n], limit) for n in names))
    per_check = dict(zip(names, results, strict=True))
    healthy = all(r["status"] == HEALTHY for r in results)
    body: dict[str, Any] = {
        "status": HEALTHY if healthy else UNHEALTHY,
        "service": service or (STATE.static.service_name if STATE.static else None),
        "timestamp": now_iso(),
        "uptime": round(time.monotonic() - _STARTED, 3),
        "checks": per_check,
    }
    if not healthy:
        failed = [f"{n}: {r.get('error')}" for n, r in per_check.items() if r["status"] != HEALTHY]
        body["error"] = "; ".join(failed)
    return (200 if healthy else 503), body


def add_health(app: Any, checks: Mapping[str, Check] | None = None, path: str = "/health",
               timeout: float = 5.0, service: str | None = None) -> None:
    """Add `GET {path}` to a FastAPI/Starlette app."""
    require("collector.add_health")
    from starlette.responses import JSONResponse

    async def health(request: Any) -> JSONResponse:
        status, body = await health_report(checks or {}, timeout, service)
        return JSONResponse(body, status_code=status)

    app.add_route(path, health, methods=["GET"], include_in_schema=False)
