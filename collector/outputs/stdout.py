"""Stdout: what Docker's log driver collects. A worker thread writes batches, one JSON per line."""

from __future__ import annotations

import sys

from collector.outputs.base import Output


class StdoutOutput(Output):
    name = "stdout"

    def _run(self) -> None:
        backoff = 0.0
        pending: list[bytes] = []
        while True:
            if not pending:
                self.wait_for_work()
                pending = self.take()
                if not pending:
                    if self.closing:
                        return
                    continue
            try:
                out = sys.stdout.buffer
                out.write(b"\n".join(pending) + b"\n")
                out.flush()
            except Exception:
                self.failures += 1
                self.connected = False
                if self.closing:
                    self.dropped += len(pending)  # held for retry, lost at the shutdown deadline
                    return
                backoff = self.next_backoff(backoff)
                self.sleep(backoff)
                continue
            self.delivered += len(pending)
            self.connected = True
            backoff = 0.0
            notice = self.drop_notice()
            pending = [notice] if notice is not None else []
