"""`collector` console script: the ingest API (`serve`), the OTLP intake (`otlp`), the health prober
(`probe`), the log tailer (`tail`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="collector",
        description="elk-pipeline collector: HTTP ingest API for non-Python services and the health prober.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the HTTP ingest API (POST /v1/logs, /v1/metrics, /v1/health)")
    sub.add_parser("otlp", help="run the OTLP/HTTP intake (POST /v1/logs, /v1/metrics on port 4318)")
    sub.add_parser("probe", help="poll the configured /health endpoints and publish results to Kafka")
    sub.add_parser("tail", help="ship log files and Docker containers' logs to Kafka, positions kept (TAIL_*)")
    sub.add_parser("forward-nginx", help="removed: `collector tail` reads nginx's logs (README, Log tailer)")
    tok = sub.add_parser("token", help="make an ingest API token and the SHA-256 hash to configure (INGEST_TOKENS)")
    tok.add_argument("--hash-stdin", action="store_true", help="print the hash of the token read from stdin instead")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in ("probe", "serve", "otlp", "tail"):
        try:
            return {"probe": probe, "serve": serve, "otlp": otlp, "tail": tail}[args.command]()
        except ImportError as exc:  # installed without the extra this command needs
            print(f"collector {args.command}: {exc}", file=sys.stderr)
            return 2
    if args.command == "forward-nginx":
        print("collector forward-nginx was removed: `collector tail` follows nginx's access and error logs "
              "with positions kept (see the README, section Log tailer)", file=sys.stderr)
        return 2
    if args.command == "token":
        import secrets

        from collector.ingest.auth import token_hash

        if args.hash_stdin:
            print(token_hash(sys.stdin.read().strip()))
        else:
            token = secrets.token_urlsafe(32)
            print(f"token: {token}\nsha256: {token_hash(token)}")
        return 0
    print(f"collector {args.command}: not implemented yet", file=sys.stderr)
    return 2


def _start(command: str, settings_cls: Any, prefix: str, service: str) -> Any:
    """Settings from the environment (None after printing what is wrong), then our own logs: ECS on
    stdout through the library (COLLECTOR_* env vars apply)."""
    import os

    from pydantic import ValidationError

    import collector
    from collector.contract.settings import describe_error

    try:
        settings = settings_cls()
    except (ValidationError, ValueError) as exc:  # ValueError: an unreadable <PREFIX>CONFIG_FILE
        problem = describe_error(exc, prefix) if isinstance(exc, ValidationError) else str(exc)
        print(f"collector {command}: invalid configuration: {problem}", file=sys.stderr)
        return None
    collector.configure(**({} if os.environ.get("COLLECTOR_SERVICE") else {"service": service}))
    return settings


def probe() -> int:
    """The health prober, settings from PROBE_*; SIGTERM ends it after the current round."""

    from collector.extras import require

    require("the health prober (collector probe)")
    from collector.probe.config import ProbeSettings
    from collector.probe.prober import run

    settings = _start("probe", ProbeSettings, "PROBE_", "elk-prober")
    if settings is None:
        return 2

    return _until_signal(lambda stop: run(settings, stop))


def tail() -> int:
    """The log tailer, settings from TAIL_* (and TAIL_CONFIG_FILE); SIGTERM stops after the in-flight
    records were acknowledged and the positions written."""

    from collector.extras import require

    require("the log tailer (collector tail)")
    from collector.tail.service import Tailer
    from collector.tail.settings import TailSettings

    settings = _start("tail", TailSettings, "TAIL_", "elk-tail")
    if settings is None:
        return 2

    return _until_signal(lambda stop: Tailer(settings).run(stop))


def _until_signal(service: Any) -> int:
    """Run `service(stop)` until SIGTERM or SIGINT sets `stop`."""
    import asyncio
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await service(stop)

    asyncio.run(main())
    return 0


def serve() -> int:
    """The ingest API under uvicorn (one worker; run more containers to scale), settings from INGEST_*."""
    return _http_service("serve", "the ingest API (collector serve)", "collector.ingest", "IngestSettings",
                         "elk-ingest", "host", "port")


def otlp() -> int:
    """The OTLP/HTTP intake under uvicorn, settings from INGEST_* (shared with `serve`) and INGEST_OTLP_*."""
    return _http_service("otlp", "the OTLP intake (collector otlp)", "collector.otlp", "OtlpSettings",
                         "elk-otlp", "otlp_host", "otlp_port")


def _http_service(command: str, what: str, package: str, settings_name: str, service: str,
                  host_field: str, port_field: str) -> int:
    """One of the HTTP services: its extra checked, its settings read (2 when invalid), then uvicorn."""
    import importlib

    from collector.extras import require

    require(what)
    import uvicorn

    import collector

    settings = _start(command, getattr(importlib.import_module(f"{package}.config"), settings_name), "INGEST_",
                      service)
    if settings is None:
        return 2
    app = importlib.import_module(f"{package}.app").create_app(settings)
    uvicorn.run(app, host=getattr(settings, host_field), port=getattr(settings, port_field),
                limit_concurrency=settings.limit_concurrency, access_log=settings.access_log,
                log_config=collector.uvicorn_log_config(), server_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
