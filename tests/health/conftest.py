"""Fixtures shared by the health tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.health.loopback import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    hooks.start()
    yield hooks
    hooks.stop()
