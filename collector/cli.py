"""`collector` console script: the ingest API (`serve`) and the health prober (`probe`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="collector",
        description="elk-pipeline collector: HTTP ingest API for non-Python services and the health prober.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the HTTP ingest API (POST /v1/logs, /v1/metrics, /v1/health)")
    sub.add_parser("probe", help="poll the configured /health endpoints and publish results to Kafka")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "probe":
        import asyncio

        from collector.probe.config import ProbeSettings
        from collector.probe.prober import run

        asyncio.run(run(ProbeSettings()))
        return 0
    print(f"collector {args.command}: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
