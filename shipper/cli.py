"""`shipper` console script: run, setup, replay. Every setting is listed in --help, from the model."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipper.config import ShipperSettings

# SIGTERM/SIGINT that arrive while the heavy imports still run (an orchestrator stopping a
# shipper that has just started) are remembered, and `run` then stops cleanly instead of the
# process dying from the default action.
EARLY_SIGNALS: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    EARLY_SIGNALS.append(signum)


def _settings_help() -> str:
    from collector.settings_reference import env_vars
    from shipper.config import ShipperSettings

    lines = ["settings (environment variables; also keys of the JSON/TOML file in SHIPPER_CONFIG_FILE):"]
    for var in env_vars(ShipperSettings):
        default = "required" if var.required else f"default: {var.default or '(none)'}"
        lines.append(f"  {var.name:<40} {var.description} [{default}]")
    return "\n".join(lines)


def _load() -> ShipperSettings:
    from pydantic import ValidationError

    from collector.contract.settings import describe_error
    from shipper.config import ShipperSettings

    try:
        return ShipperSettings()
    except ValidationError as exc:
        raise SystemExit(f"shipper: invalid configuration: {describe_error(exc, 'SHIPPER_')}") from None
    except ValueError as exc:  # an unreadable config file
        raise SystemExit(f"shipper: invalid configuration: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the console script, not a test calling main([...])
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _remember)
        # Records are acyclic dicts made and dropped by the hundred thousand: a collector pass every
        # 700 allocations is pure overhead, and so it is over the ~75,000 long-lived objects the
        # imports below make (~180 passes). run() then moves those out of its sight (shipper/app.py).
        gc.set_threshold(50_000, 20, 100)
    parser = argparse.ArgumentParser(
        prog="shipper",
        description="elk-pipeline shipper: consumes log, metric and health records from Kafka and "
        "bulk-writes them, enriched, into Elasticsearch/OpenSearch data streams.",
        epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="consume from Kafka and index into the search engine",
                   epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_parser("setup", help="install the index templates (idempotent) and exit")
    replay = sub.add_parser("replay", help="re-publish dead letters to their original topics")
    replay.add_argument("--error-type", help="only dead letters of this error.type (e.g. mapper_parsing_exception)")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    settings = _load()
    from shipper.log import configure, get_logger

    configure()
    if args.command == "run":
        # first line of every run: from here on SIGTERM means a clean stop (scripts may wait for it)
        get_logger("shipper").info("starting", group=settings.group_id, topics=settings.topic_list)
        from shipper.app import run

        return asyncio.run(run(settings, early_signals=EARLY_SIGNALS))
    if args.command == "setup":
        from shipper.engines.base import EngineRejected, EngineUnavailable
        from shipper.setup import setup_once

        try:
            kind, removed = asyncio.run(setup_once(settings))
        except (EngineUnavailable, EngineRejected) as exc:
            print(f"shipper setup: {exc}", file=sys.stderr)
            return 1
        print(f"templates installed ({kind})" + (f"; removed the former broad templates {removed}" if removed else ""))
        return 0
    from shipper.replay import replay as do_replay

    replayed, skipped = asyncio.run(do_replay(settings, args.error_type))
    print(f"replayed {replayed} dead letters, skipped {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
