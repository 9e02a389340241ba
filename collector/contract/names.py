"""Instance -> service: one rule for the prober, the ingest API, the tailer and the shipper.

An instance is a service name followed by `-N` or `_N` (Compose names replicas
`<project>-<service>-1`, older Compose `<project>_<service>_1`; the tutorial's replicas are
`api-service-1`). The service is the name without that suffix; the instance is the node name.
A name without a numeric suffix is its own service (and its own single node).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_INSTANCE = re.compile(r"^(?P<service>.*?[^-_])[-_](?P<ordinal>\d+)$")


def split_instance(name: str) -> tuple[str, str]:
    """`api-service-1` -> (`api-service`, `api-service-1`); `redis` -> (`redis`, `redis`)."""
    name = name.strip()
    found = _INSTANCE.match(name)
    return (found["service"], name) if found else (name, name)


def service_of(name: str) -> str:
    return split_instance(name)[0]


def is_instance_of(instance: str, service: str) -> bool:
    """True for the service itself and for any of its numbered instances."""
    return instance == service or service_of(instance) == service


def other_service_named(node: str, service: str, known: Iterable[str]) -> str | None:
    """The other service a node name names (`auth-service-1` for a token of `api-service` when
    `auth-service` is a known service), else None. A node name may be anything (a host, a pod)
    except an instance of a service other than the writer's."""
    if is_instance_of(node, service):
        return None
    named = service_of(node)
    for other in known:
        if other != service and (node == other or named == other):
            return other
    return None
