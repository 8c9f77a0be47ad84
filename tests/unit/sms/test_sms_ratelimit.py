import uuid

import pytest

from hub.channels.sms.ratelimit import (
    TAKE_LUA,
    BucketState,
    SenderKind,
    classify_sender,
    rate_for,
    take,
)


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("12345", SenderKind.SHORT_CODE),
        ("898932", SenderKind.SHORT_CODE),
        ("+18005551234", SenderKind.TOLL_FREE),
        ("+1 (888) 555-1234", SenderKind.TOLL_FREE),
        ("+18335551234", SenderKind.TOLL_FREE),
        ("+14155551234", SenderKind.LONG_CODE),
        ("+390612345678", SenderKind.LONG_CODE),
        ("+39800123456", SenderKind.LONG_CODE),  # Italian numero verde is not NANP toll-free
        ("1234", SenderKind.LONG_CODE),
        ("whatsapp:+14155238886", SenderKind.WHATSAPP),
    ],
)
def test_classify_sender(number: str, kind: SenderKind) -> None:
    assert classify_sender(number) is kind


def test_rates_are_configurable() -> None:
    assert rate_for(SenderKind.LONG_CODE) == 1
    assert rate_for(SenderKind.TOLL_FREE) == 3
    assert rate_for(SenderKind.SHORT_CODE) == 100
    assert rate_for(SenderKind.LONG_CODE, {SenderKind.LONG_CODE: 10}) == 10


def test_full_bucket_allows_a_burst_then_waits() -> None:
    state = None
    for _ in range(3):
        state, wait = take(state, 100.0, rate=1, burst=3)
        assert wait == 0
    state, wait = take(state, 100.0, rate=1, burst=3)
    assert wait == pytest.approx(1.0)
    # a refused take consumes nothing: after the wait exactly one token is there
    state, wait = take(state, 101.0, rate=1, burst=3)
    assert wait == 0
    assert state.tokens == pytest.approx(0)


def test_refill_is_capped_at_burst() -> None:
    state, _ = take(BucketState(tokens=0, updated_at=0), 1000.0, rate=3, burst=5)
    assert state.tokens == pytest.approx(4)


def test_partial_refill_gives_fractional_wait() -> None:
    _, wait = take(BucketState(tokens=0.25, updated_at=10.0), 10.0, rate=0.5, burst=1)
    assert wait == pytest.approx(1.5)


def test_clock_going_backwards_adds_no_tokens() -> None:
    state, wait = take(BucketState(tokens=0, updated_at=50.0), 40.0, rate=1, burst=1)
    assert wait == pytest.approx(1.0)
    assert state.updated_at == 50.0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        take(None, 0, rate=0, burst=1)


@pytest.mark.redis
def test_lua_script_matches_the_pure_step() -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        script = client.register_script(TAKE_LUA)
        key = f"hub-test:sms-bucket:{uuid.uuid4().hex}"
        state: BucketState | None = None
        for now in (100.0, 100.0, 100.0, 100.25, 101.0, 101.5, 103.0):
            state, expected = take(state, now, rate=2, burst=2)
            got = float(script(keys=[key], args=[2, 2, repr(now)]))
            assert got == pytest.approx(expected), now
        assert 0 < client.ttl(key) <= 2
        assert float(script(keys=[key], args=[2, 2, ""])) >= 0  # the Redis clock path
        client.delete(key)
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        client.close()
