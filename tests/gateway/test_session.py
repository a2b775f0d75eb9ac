"""The per-connection rules without sockets: the clock is an argument, the registry a plain object."""

from __future__ import annotations

import asyncio
import logging
import time

import jwt
import orjson
import pytest

from services.common.settings import load
from services.gateway import metrics, protocol
from services.gateway.auth import Authenticator, AuthError, Grant
from services.gateway.limits import LogThrottle, connection_caps
from services.gateway.protocol import Close, Err, ProtocolError
from services.gateway.server import throttled_exception_handler
from services.gateway.session import Closing, Limits, Session
from services.gateway.settings import GatewaySettings
from services.gateway.state import Registry, history_message, history_message_size
from tests.gateway.test_asyncapi_conformance import validate

LIMITS = Limits(max_subscriptions=3, max_frame_bytes=256, rate=5.0, queue_size=10, max_queued_bytes=20_000)
SECRET = "unit-test-secret-of-at-least-32-bytes"


def registry_with(channels: int, records: int, size: int = 100) -> Registry:
    registry = Registry(history_size=1000)
    offset = 0
    for c in range(channels):
        for _ in range(records):
            registry.append("indicators", f"s{c}:1d", offset, orjson.dumps({"pad": "x" * size}), 0)
            offset += 1
    return registry


def drain(session: Session) -> list[dict[str, object]]:
    out = []
    while len(session.queue):
        out.append(orjson.loads(session.queue.pop()))
    return out


def request(**fields: object) -> str:
    return orjson.dumps(fields).decode()


def test_rate_bucket_counts_every_frame_and_refills_with_the_clock() -> None:
    session = Session(LIMITS, Grant(), now=100.0)
    for _ in range(5):
        session.admit(100.0)
    with pytest.raises(Closing) as closing:
        session.admit(100.0)
    assert closing.value.code == Close.LIMIT_EXCEEDED and closing.value.limit == "rate"
    assert closing.value.error is not None and closing.value.error.code == Err.RATE_LIMITED
    session = Session(LIMITS, Grant(), now=100.0)
    for step in range(50):  # 5 per second for 10 s: always within the rate
        session.admit(100.0 + step * 0.2)


def test_history_and_snapshots_count_against_the_byte_budget_before_anything_changes() -> None:
    registry = registry_with(channels=5, records=40)  # ~5 x 40 x 150 bytes of history per request
    session = Session(LIMITS, Grant(), now=0.0)
    with pytest.raises(Closing) as closing:
        session.receive(request(op="subscribe", id=1, channels=["indicators:*"], history=1000), registry, 0.0)
    assert closing.value.code == Close.LIMIT_EXCEEDED and closing.value.limit == "bytes"
    assert closing.value.error is not None and closing.value.error.code == Err.BUDGET_EXCEEDED
    assert session.subscriptions == set() and len(session.queue) == 0  # validated before mutating

    small = Session(LIMITS, Grant(), now=0.0)
    small.receive(request(op="subscribe", id=1, channels=["indicators:s0:1d"], history=20), registry, 0.0)
    channel = registry.channels["indicators:s0:1d"]
    expected = sum(history_message_size(e) for e in channel.past_entries(20)) + len(channel.snapshot() or b"")
    assert [len(history_message(channel.name, e)) for e in channel.past_entries(3)] == \
        [history_message_size(e) for e in channel.past_entries(3)]
    ack = protocol.ack(1, "subscribe", ("indicators:s0:1d",))
    assert small.queue.nbytes == len(ack) + expected  # the answer was sized exactly before it was built
    sent = drain(small)
    assert [m["type"] for m in sent] == ["ack"] + ["history"] * 20 + ["snapshot"]
    assert small.queue.nbytes == 0


def test_resubscribing_counts_against_the_budget() -> None:
    registry = registry_with(channels=1, records=40)
    session = Session(LIMITS, Grant(), now=0.0)
    frame = request(op="subscribe", id=1, channels=["indicators:s0:1d"], history=30)
    session.receive(frame, registry, 0.0)
    once = session.queue.nbytes
    assert 0 < once < LIMITS.max_queued_bytes // 2
    session.receive(frame, registry, 0.0)  # the same subscription again: its answer is queued again
    assert session.queue.nbytes >= 2 * once - 300  # less the snapshot, which conflates in place
    with pytest.raises(Closing) as closing:
        for _ in range(10):
            session.receive(frame, registry, 0.0)
    assert closing.value.limit == "bytes"
    assert session.queue.nbytes <= LIMITS.max_queued_bytes


def test_updates_beyond_the_budget_close_a_slow_consumer_and_state_conflates() -> None:
    session = Session(LIMITS, Grant(), now=0.0)
    assert not session.deliver("sector:ai", True, b"x" * 5000)
    assert session.deliver("sector:ai", True, b"y" * 5000)  # replaced in place
    assert session.queue.nbytes == 5000
    session.deliver("alerts:a", False, b"z" * 10_000)
    with pytest.raises(Closing) as closing:
        session.deliver("alerts:a", False, b"z" * 10_000)
    assert closing.value.code == Close.SLOW_CONSUMER and closing.value.slow


def test_limits_frames_grants_and_subscriptions() -> None:
    registry = Registry(10)
    session = Session(LIMITS, Grant(("sector:*",)), now=0.0)
    with pytest.raises(Closing) as closing:
        session.receive('{"op":"ping","pad":"' + "x" * 300 + '"}', registry, 0.0)
    assert closing.value.limit == "frame_size"
    with pytest.raises(ProtocolError) as error:
        session.receive(b'{"op":"ping"}', registry, 0.0)
    assert error.value.code == Err.BINARY_FRAME
    with pytest.raises(ProtocolError) as error:
        session.receive(request(op="subscribe", id=2, channels=["asset:BTC"]), registry, 0.0)
    assert error.value.code == Err.FORBIDDEN
    changes = session.receive(request(op="subscribe", id=3, channels=["sector:a", "sector:b"]), registry, 0.0)
    assert changes.added == ["sector:a", "sector:b"]
    with pytest.raises(ProtocolError) as error:
        session.receive(request(op="subscribe", id=4, channels=["sector:c", "sector:d"]), registry, 0.0)
    assert error.value.code == Err.TOO_MANY_SUBSCRIPTIONS and session.subscriptions == {"sector:a", "sector:b"}
    changes = session.receive(request(op="unsubscribe", id=5, channels=["sector:a", "sector:x"]), registry, 0.0)
    assert changes.removed == ["sector:a"]


def test_liveness_a_ping_unanswered_by_the_next_tick_closes() -> None:
    session = Session(LIMITS, Grant(), now=0.0)
    session.tick(15.0)
    session.on_pong()
    session.tick(30.0)
    assert [m["type"] for m in drain(session)] == ["heartbeat", "heartbeat"]
    with pytest.raises(Closing) as closing:
        session.tick(45.0)
    assert closing.value.code == Close.SLOW_CONSUMER


def test_token_expiry_closes_with_4001_and_refresh_extends() -> None:
    settings = load(GatewaySettings, environ={}, gateway_auth_secret=SECRET)
    auth = Authenticator(settings)
    now = time.time()
    grant = auth.grant(jwt.encode({"exp": int(now) + 10, "channels": ["sector:*"]}, SECRET), now)
    assert grant.expires_at == int(now) + 10
    session = Session(LIMITS, grant, now=now, authenticate=auth.grant)
    session.check_expiry(now + 5)
    with pytest.raises(Closing) as closing:
        session.check_expiry(now + 10)
    assert closing.value.code == Close.AUTH_FAILED and closing.value.error is not None
    assert closing.value.error.code == Err.TOKEN_EXPIRED
    validate("error", orjson.loads(protocol.error(Err.TOKEN_EXPIRED, closing.value.error.message)))

    session.receive(request(op="subscribe", id=1, channels=["sector:ai"]), Registry(10), now)
    narrower = jwt.encode({"exp": int(now) + 100, "channels": ["asset:*"]}, SECRET)
    with pytest.raises(ProtocolError) as error:
        session.receive(request(op="refresh", id=2, token=narrower), Registry(10), now)
    assert error.value.code == Err.FORBIDDEN and session.expires_at == int(now) + 10
    with pytest.raises(ProtocolError) as error:
        session.receive(request(op="refresh", id=3, token="garbage"), Registry(10), now)
    assert error.value.code == Err.AUTH_FAILED
    longer = jwt.encode({"exp": int(now) + 100, "channels": ["sector:*"]}, SECRET)
    session.receive(request(op="refresh", id=4, token=longer), Registry(10), now)
    assert session.expires_at == int(now) + 100
    session.check_expiry(now + 50)
    ack = drain(session)[-1]
    assert (ack["type"], ack["op"], ack["id"]) == ("ack", "refresh", 4)
    validate("ack", ack)
    validate("refresh", orjson.loads(request(op="refresh", id=4, token=longer)))


def test_audience_and_maximum_lifetime() -> None:
    now = time.time()
    plain = Authenticator(load(GatewaySettings, environ={}, gateway_auth_secret=SECRET))
    assert plain.grant(jwt.encode({"exp": int(now) + 60, "aud": "someone"}, SECRET), now).patterns is None
    with pytest.raises(AuthError, match="lifetime"):
        plain.grant(jwt.encode({"exp": int(now) + 2 * 86400}, SECRET), now)
    with pytest.raises(AuthError, match="lifetime"):
        plain.grant(jwt.encode({"iat": int(now) - 86400, "exp": int(now) + 60}, SECRET), now)
    strict = Authenticator(load(GatewaySettings, environ={}, gateway_auth_secret=SECRET,
                                gateway_auth_audience="cryptopulse-gw", gateway_auth_max_lifetime_seconds=300.0))
    assert strict.grant(jwt.encode({"exp": int(now) + 60, "aud": ["x", "cryptopulse-gw"]}, SECRET), now)
    for claims in ({"exp": int(now) + 60}, {"exp": int(now) + 60, "aud": "other"}):
        with pytest.raises(AuthError):
            strict.grant(jwt.encode(claims, SECRET), now)
    with pytest.raises(AuthError, match="lifetime"):
        strict.grant(jwt.encode({"exp": int(now) + 600, "aud": "cryptopulse-gw"}, SECRET), now)


def test_connection_caps_leave_headroom_under_the_open_file_limit() -> None:
    for limit in (256, 1024, 20000, 1048576):
        caps = connection_caps(limit, 0)
        assert caps.websockets < caps.sockets < limit
        assert limit - caps.sockets >= 64
    assert connection_caps(20000, 20000).websockets < 20000  # a configured value cannot exceed the derived cap
    assert connection_caps(20000, 100).websockets == 100


def test_log_throttle_once_per_interval_with_the_count_of_suppressed_lines() -> None:
    throttle = LogThrottle(10.0)
    assert throttle.allow("accept", 0.0) == 0
    assert [throttle.allow("accept", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.allow("other", 3.0) == 0
    assert throttle.allow("accept", 10.0) == 3


def test_accept_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        context = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
        with caplog.at_level(logging.INFO, logger="cryptopulse.gateway"):
            for _ in range(1000):
                throttled_exception_handler(loop, context)
    finally:
        loop.close()
    assert len([r for r in caplog.records if "accept" in r.getMessage()]) == 1


def test_unknown_close_codes_are_labelled_other() -> None:
    metrics.KNOWN_CLOSE_CODES.update({4001})
    assert [metrics.close_code_label(c) for c in (1000, None, 4001, 3000, 4999, 65535)] == \
        ["1000", "1006", "4001", "other", "other", "other"]


def test_protocol_error_requests_keep_ids_through_the_session() -> None:
    session = Session(LIMITS, Grant(), now=0.0)
    with pytest.raises(ProtocolError) as error:
        session.receive(request(op="refresh", id=7), Registry(1), 0.0)
    assert error.value.code == Err.BAD_REQUEST and error.value.request_id == 7
