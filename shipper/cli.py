"""`shipper` console script."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="shipper",
        description="elk-pipeline shipper: consumes log, metric and health records from Kafka and "
        "bulk-writes them, enriched, into Elasticsearch/OpenSearch data streams.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="consume from Kafka and index into the search engine")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    print(f"shipper {args.command}: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
