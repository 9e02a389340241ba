"""The health monitor's tick on the event loop: how long one `evaluate` takes with many services
tracked and few of them active (issue 20 item 7: O(changed), never O(all)).

N services log once, then K keep logging one record per tick; the median and worst `evaluate`
over the following ticks (before any silence deadline), with an injected clock. Pure CPU, no
servers. Run the same command on two trees to compare them.

    .venv/bin/python -m bench.bench_health_tick --services 1000 --active 3 --ticks 100
"""

from __future__ import annotations

import argparse
import statistics
import time

from collector.contract.timefmt import format_epoch
from shipper.health.config import HealthSettings
from shipper.health.monitor import HealthMonitor
from shipper.monitor import PipelineStatus

T0 = 1_790_000_000.0


def record(service: str, when: float) -> dict[str, object]:
    return {"@timestamp": format_epoch(when), "log": {"level": "info"}, "service": {"name": service},
            "message": "m", "data_stream": {"type": "logs", "dataset": service, "namespace": "b"}}


def run(services: int, active: int, ticks: int) -> tuple[float, float]:
    settings = HealthSettings(silence_s=ticks + 60, **({"max_services": services} if "max_services" in
                                                        HealthSettings.model_fields else {}))
    mon = HealthMonitor(settings, "b")
    for n in range(services):
        mon.observe(record(f"svc-{n}", T0))
    status = PipelineStatus(lag_by_partition={"elk-logs/0": 0})
    mon.evaluate(T0 + 1, status)
    took: list[float] = []
    for t in range(2, ticks + 2):
        for n in range(active):
            mon.observe(record(f"svc-{n}", T0 + t))
        began = time.perf_counter()
        mon.evaluate(T0 + t, status)
        took.append(time.perf_counter() - began)
    return statistics.median(took), max(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--active", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=100)
    args = parser.parse_args()
    median, worst = run(args.services, args.active, args.ticks)
    print(f"{args.services} services, {args.active} active: evaluate median {median * 1000:.3f} ms, "
          f"worst {worst * 1000:.3f} ms over {args.ticks} ticks")


if __name__ == "__main__":
    main()
