"""The compiled part of the transform's fast path: native/, a Rust extension (the elk-native
package) that `make venv` builds when cargo is there.

Optional: without it, or with SHIPPER_NATIVE_FAST_PATH=false, shipper/fast.py does the same work
in Python and the documents are the same bytes (tests/shipper/test_fast.py and test_hostile.py run
every comparison both ways).
"""

from __future__ import annotations

from typing import Any

try:
    from elk_native import Batch as NativeBatch
except ImportError:
    NativeBatch: Any = None  # type: ignore[no-redef]


def fast_path_kind(enabled: bool) -> str:
    """What the shipper says at start-up about its fast path."""
    return "native" if enabled and NativeBatch is not None else "python"
