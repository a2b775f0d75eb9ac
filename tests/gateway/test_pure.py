"""Unit tests of the pure parts: request parsing, channel matching, envelopes, registry, send queue."""

from __future__ import annotations

import orjson
import pytest

from services.gateway import protocol
from services.gateway.protocol import Err, ProtocolError
from services.gateway.state import Channel, QueueOverflow, Registry, SendQueue


@pytest.mark.parametrize(("frame", "code"), [
    ("{", Err.BAD_JSON), ("3", Err.BAD_REQUEST), ('{"op":"x"}', Err.UNKNOWN_OP),
    ('{"op":"subscribe","channels":[]}', Err.BAD_REQUEST), ('{"op":"subscribe","id":1.5,"channels":["a"]}', Err.BAD_REQUEST),
    ('{"op":"subscribe","channels":["moon:x"]}', Err.UNKNOWN_CHANNEL),
    ('{"op":"subscribe","channels":["sector"]}', Err.UNKNOWN_CHANNEL),
    ('{"op":"subscribe","channels":["sector:"]}', Err.UNKNOWN_CHANNEL),
    ('{"op":"subscribe","channels":["se*:x"]}', Err.UNKNOWN_CHANNEL),
    ('{"op":"subscribe","channels":["sector:ai"],"since":{"sector:ai":"1"}}', Err.BAD_REQUEST),
    ('{"op":"subscribe","channels":["sector:ai"],"history":-1}', Err.BAD_REQUEST),
])
def test_bad_requests_have_codes(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        protocol.parse_request(frame)
    assert exc.value.code == code


def test_valid_requests_and_request_id_kept_on_errors() -> None:
    request = protocol.parse_request('{"op":"subscribe","id":"a","channels":["sector:*","sector:*","alerts*"],'
                                     '"since":{"sector:ai":4},"history":3}')
    assert request.channels == ("sector:*", "alerts*") and request.since == {"sector:ai": 4} and request.history == 3
    with pytest.raises(ProtocolError) as exc:
        protocol.parse_request('{"op":"subscribe","id":9,"channels":["nope:x"]}')
    assert exc.value.request_id == 9


def test_matching() -> None:
    assert protocol.matches("liquidations:24h:*", "liquidations:24h:asset:BTC")
    assert not protocol.matches("liquidations:24h:*", "liquidations:1h:all")
    assert protocol.matches("sector:ai", "sector:ai") and not protocol.matches("sector:ai", "sector:ai2")


def test_envelope_splices_value_bytes() -> None:
    value = b'{"cap_usd":1.5e12,"name":"AI \\u00e9"}'
    message = orjson.loads(protocol.envelope("update", 'sector:"q"', 5, None, value, 7, recovered=False,
                                             epoch="0-0-1"))
    assert message == {"type": "update", "channel": 'sector:"q"', "seq": 5, "prev": None, "epoch": "0-0-1",
                       "ts": 7, "recovered": False, "data": orjson.loads(value)}


def test_channel_history_replay_is_all_or_nothing() -> None:
    channel = Channel("sector:ai", "sector", history_size=3)
    for seq in (1, 2, 5, 9, 11):
        assert channel.append(seq, b"{}", 0) is not None
    assert channel.append(9, b"{}", 0) is None  # redelivery
    assert [e.seq for e in channel.replay_after(5) or []] == [9, 11]
    assert channel.replay_after(11) == []
    assert [e.seq for e in channel.replay_after(2) or []] == [5, 9, 11]  # 2 left, its successor is kept
    assert channel.replay_after(1) is None  # not a seq of this channel's retained chain
    assert [orjson.loads(m)["seq"] for m in channel.past(10)] == [5, 9]


def test_registry_matching() -> None:
    registry = Registry(10)
    for key in ("ai", "l1", "total"):
        registry.append("sector", key, 1, b"{}", 0)
    registry.append("asset", "BTC", 1, b"{}", 0)
    assert sorted(c.name for c in registry.matching("sector:*")) == ["sector:ai", "sector:l1", "sector:total"]
    assert [c.name for c in registry.matching("asset:BTC")] == ["asset:BTC"]
    assert list(registry.matching("asset:ETH")) == []


def test_send_queue_conflates_state_and_overflows_on_events() -> None:
    queue = SendQueue(limit=2)
    assert not queue.put_state("sector:ai", b"1")
    queue.put(b"alert")
    assert queue.put_state("sector:ai", b"2")
    queue.put(b"alert2")
    with pytest.raises(QueueOverflow):
        queue.put(b"alert3")
    assert [queue.pop() for _ in range(len(queue))] == [b"2", b"alert", b"alert2"]
    queue.put(b"again")
    assert queue.pop() == b"again"


def test_history_answer_is_one_queue_item_in_order() -> None:
    queue = SendQueue(limit=2)
    queue.put(b"ack")
    queue.put_bulk([b"h1", b"h2", b"h3", b"h4"])  # 4 messages, one item against the limit
    with pytest.raises(QueueOverflow):
        queue.put_bulk([b"more"])
    queue.put_state("sector:ai", b"snap")  # state items never count against the limit
    popped = []
    while len(queue):
        popped.append(queue.pop())
    assert popped == [b"ack", b"h1", b"h2", b"h3", b"h4", b"snap"]
    queue.put(b"a")
    queue.put(b"b")  # the bulk item no longer counts once sent
