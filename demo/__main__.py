"""Until the pipeline exists, the demo starts the local stack and says how to reach it."""

from __future__ import annotations

import sys

from stack.localstack import Config


def main() -> int:
    cfg = Config.from_env()
    print("elk-pipeline demo: the local stack is up.")
    print(f"  Kafka:      {cfg.bootstrap}")
    print(f"  OpenSearch: {cfg.search_url}  (try: curl '{cfg.search_url}/_cat/indices?v')")
    print("  Stop it with: make stack-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
