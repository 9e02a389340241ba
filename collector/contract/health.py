"""Health vocabulary: what a probe result says, and the states the shipper tracks.

A probe result's `health.status` is one of healthy, degraded, unhealthy. A `/health` body's own
status word is read with one table for every source (prober, `/v1/health`, Docker): a service
that answers but says `degraded` is degraded everywhere, never healthy in one place and
unhealthy in another. An HTTP answer outside 2xx is unhealthy whatever the body says.
"""

from __future__ import annotations

HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = "healthy", "degraded", "unhealthy", "unknown"
PROBE_STATUSES = (HEALTHY, DEGRADED, UNHEALTHY)
STATES = (HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN)

_WORDS = {
    **{w: HEALTHY for w in ("healthy", "ok", "up", "pass", "passing", "green", "alive", "ready", "running")},
    **{w: DEGRADED for w in ("degraded", "warn", "warning", "yellow", "partial", "impaired")},
    **{w: UNHEALTHY for w in ("unhealthy", "down", "fail", "failed", "failing", "error", "red", "critical",
                              "dead", "stopped", "exited")},
}


def status_word(word: object) -> str | None:
    """A body's status word as a probe status, or None when the word means nothing known."""
    if not isinstance(word, str):
        return None
    return _WORDS.get(word.strip().lower())


def probe_status(http_ok: bool, body_status: object = None) -> str:
    """The probe status of one answer: transport/HTTP result first, then the body's own word.

    An unknown body word on a 2xx counts as healthy (the endpoint answered; many return
    free text); a known word decides.
    """
    if not http_ok:
        return UNHEALTHY
    return status_word(body_status) or HEALTHY


def is_up(status: object) -> bool:
    """Whether a probe status counts as serving (healthy or degraded)."""
    return status in (HEALTHY, DEGRADED)


def outcome(status: str) -> str:
    """ECS `event.outcome` of a probe result."""
    return "success" if status == HEALTHY else "failure"
