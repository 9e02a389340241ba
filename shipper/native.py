"""The compiled part of the transform's fast path (native/, a Rust extension built by `make venv`).

Optional: when it is not installed, or switched off with `ELK_NATIVE=off` in the environment (to
compare, or to rule it out at 3 a.m.), shipper/fast.py does the same work in Python and the
documents are the same bytes (tests/shipper/test_fast.py runs every comparison both ways).
"""

from __future__ import annotations

import os
from typing import Any

OFF = ("0", "off", "false", "no")


def load() -> Any:
    """elk_native.Batch, or None."""
    if os.environ.get("ELK_NATIVE", "on").strip().lower() in OFF:
        return None
    try:
        from elk_native import Batch
    except ImportError:
        return None
    return Batch


NativeBatch: Any = load()
