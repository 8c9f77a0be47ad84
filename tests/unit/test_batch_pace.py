"""BatchPace: a batch holds about half a second of sending at the pace its kind and channel's batches finish."""

from __future__ import annotations

from hub.core.jobs import BatchPace

EMAIL = ("send_message", "email")
SMS = ("send_message", "sms")


def test_the_first_batches_take_the_starting_size_within_the_cap() -> None:
    pace = BatchPace(seconds=0.5, first=100)
    assert pace.size(EMAIL, 500) == 100
    assert pace.size(EMAIL, 7) == 7


def test_a_fast_kind_gets_batches_of_half_a_second_up_to_the_cap() -> None:
    pace = BatchPace(seconds=0.5, first=100)
    for n in range(5):  # a batch of 100 every 0.05 s: 2,000 items/s
        pace.finished(EMAIL, 100, 10.0 + 0.05 * n)
    assert pace.size(EMAIL, 5000) == 1000
    assert pace.size(EMAIL, 500) == 500


def test_a_slow_server_keeps_batches_small() -> None:
    pace = BatchPace(seconds=0.5, first=100)
    for n in range(5):  # 20 items every 2 s: 10 items/s
        pace.finished(EMAIL, 20, 10.0 + 2.0 * n)
    assert pace.size(EMAIL, 500) == 5
    for n in range(5):  # a crawl: one item every 3 s
        pace.finished(EMAIL, 1, 30.0 + 3.0 * n)
    assert pace.size(EMAIL, 500) == 1


def test_an_idle_spell_teaches_nothing_and_each_channel_keeps_its_own_pace() -> None:
    pace = BatchPace(seconds=0.5, first=100)
    pace.finished(EMAIL, 100, 10.0)
    pace.finished(EMAIL, 100, 10.05)
    pace.finished(EMAIL, 1, 600.0)  # ten minutes later: not a pace of 1 item per 10 minutes
    assert pace.size(EMAIL, 5000) == 1000
    assert pace.size(SMS, 5000) == 100
    assert pace.size(("run_campaign", None), 5000) == 100
