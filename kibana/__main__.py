"""`python -m kibana [load|validate|bundle]`: load into Kibana (default), check offline, or write the NDJSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

import collector
from collector.contract.settings import describe_error
from collector.extras import require
from kibana import bundle
from kibana.config import KibanaSettings
from kibana.validate import validate_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kibana", description=(
        "elk-pipeline Kibana objects: data views, dashboards, saved searches, connectors and alert rules. "
        "Settings come from KIBANA_* environment variables."))
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("load", help="wait for Kibana, import the objects (overwrite), create/update connectors and rules")
    sub.add_parser("validate", help="offline checks of the bundle against the shipper's index templates")
    out = sub.add_parser("bundle", help="write the saved objects as NDJSON (for a manual import)")
    out.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    if args.command in (None, "load"):
        # the loader's own logs as ECS JSON, like every component's; one line per HTTP request is noise
        collector.configure(service="elk-kibana-loader", level="info", metrics_interval=0)
        logging.getLogger("httpx").setLevel(logging.WARNING)

    if args.command == "validate":
        problems = validate_dir()
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(problems)} problems", file=sys.stderr)
        return 1 if problems else 0
    if args.command == "bundle":
        data = bundle.ndjson(bundle.build())
        if args.output:
            args.output.write_bytes(data)
        else:
            sys.stdout.buffer.write(data)
        return 0
    require("the Kibana loader (python -m kibana load)")
    from kibana.loader import LoadError, load

    try:
        settings = KibanaSettings()
    except ValidationError as exc:
        collector.get_logger("kibana").error("invalid KIBANA_* settings", error=describe_error(exc, "KIBANA_"))
        return 2
    try:
        summary = asyncio.run(load(settings))
    except LoadError as exc:
        collector.get_logger("kibana").error("loading into Kibana failed", error=str(exc))
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
