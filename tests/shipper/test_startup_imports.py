"""What a shipper process loads before its first record (issue 24: start-up is CPU every process pays,
and the benchmark counts it). Rules, not timings: modules the run does not use stay unloaded, each
checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# what `shipper run` does before it consumes: settings, its own logs through the library, the app
# and the health monitor it builds (default settings: no alert webhook)
RUN_PATH = """
import shipper.cli
from shipper.config import ShipperSettings
from shipper.log import configure
configure()
from shipper.app import run
from shipper.health import build_monitor
build_monitor(ShipperSettings())
"""


def loaded_after(code: str, **env: str) -> set[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPPER_", "COLLECTOR_"))}
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        env={**clean, **env}, cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    return set(result.stdout.split())


def family(modules: set[str], *roots: str) -> list[str]:
    return sorted(m for m in modules if m in roots or m.startswith(tuple(f"{r}." for r in roots)))


def test_the_run_path_leaves_out_what_only_webhooks_and_web_services_use() -> None:
    modules = loaded_after(RUN_PATH)
    assert "shipper.health.monitor" in modules and "collector.lifecycle" in modules  # the path did run
    # httpx (and the CLI extras its package imports: click, rich, pygments) serves the alert webhooks only
    assert family(modules, "httpx", "click", "rich", "pygments") == []
    # the library's helpers for web services
    assert family(modules, "collector.middleware", "collector.health", "starlette", "fastapi") == []


def test_a_configured_webhook_still_gets_its_client() -> None:
    modules = loaded_after(RUN_PATH + """
import asyncio
from shipper.health.config import HealthSettings
from shipper.health.webhooks import WebhookNotifier
async def start() -> None:
    notifier = WebhookNotifier(HealthSettings(webhook_urls="http://127.0.0.1:9/hook"))
    await notifier.start()
    await notifier.stop(0)
asyncio.run(start())
""")
    assert "httpx" in modules


def test_the_settings_alone_load_no_monitor_engine_or_kafka_client() -> None:
    """`shipper setup`, `replay` and --help read the settings; the health monitor, its Kafka client and
    the index templates are the run's."""
    modules = loaded_after("import shipper.config")
    assert family(modules, "shipper.health.monitor", "shipper.templates", "shipper.engines", "aiokafka") == []
