from datetime import UTC, datetime, timedelta

import pytest

from hub.channels.sms.whatsapp import WhatsAppWindowError, check_whatsapp_send, window_open

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_window_is_open_for_24_hours() -> None:
    assert window_open(NOW - timedelta(hours=23, minutes=59), NOW)
    assert not window_open(NOW - timedelta(hours=24), NOW)
    assert not window_open(None, NOW)


def test_free_form_outside_the_window_names_the_rule() -> None:
    with pytest.raises(WhatsAppWindowError, match="24-hour customer service window closed"):
        check_whatsapp_send(NOW - timedelta(days=2), NOW, is_template=False)
    with pytest.raises(WhatsAppWindowError, match="only approved templates may be sent"):
        check_whatsapp_send(None, NOW, is_template=False)


def test_templates_and_open_window_pass() -> None:
    check_whatsapp_send(None, NOW, is_template=True)
    check_whatsapp_send(NOW - timedelta(hours=1), NOW, is_template=False)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_open(NOW.replace(tzinfo=None), NOW)
