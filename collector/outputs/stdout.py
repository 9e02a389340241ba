"""Stdout: what Docker's log driver collects. A worker thread writes batches, one JSON per line."""

from __future__ import annotations

import sys

from collector.outputs.base import Output


class StdoutOutput(Output):
    name = "stdout"

    def _deliver(self, batch: list[bytes]) -> None:
        out = sys.stdout.buffer
        out.write(b"\n".join(batch) + b"\n")
        out.flush()
        self.delivered += len(batch)
