"""Fixtures shared by the campaign tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.smtp_sink import SmtpSink


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """An aiosmtpd sink on a free port, in this process, for the test's duration."""
    with SmtpSink() as running:
        yield running
