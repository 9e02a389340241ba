"""Instance and service names, shared by the HTTP and Docker probe sources."""

from __future__ import annotations

import re


def service_of(instance: str) -> str:
    """`api-service-1` -> `api-service`; a name without a numeric suffix is its own service."""
    return re.sub(r"-\d+$", "", instance)
