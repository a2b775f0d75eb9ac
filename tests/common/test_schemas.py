"""Every topic has a valid JSON Schema 2020-12 file, and canonical events conform to theirs."""

from __future__ import annotations

import json

import jsonschema
import pytest

from services.common import codec
from services.common.events import DeadLetter, Liquidation, Trade
from services.common.topics import ALL_TOPICS, SCHEMA_DIR, Topic


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda t: t.name)
def test_topic_schema_is_valid_2020_12(topic: Topic) -> None:
    schema = json.loads(topic.schema_path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_schema_file_belongs_to_a_topic() -> None:
    used = {t.schema for t in ALL_TOPICS}
    files = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert files <= used, f"schema files no topic uses: {sorted(files - used)}"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / name).read_text()))


def test_canonical_events_conform_and_bad_ones_do_not() -> None:
    trade = Trade("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", "BTC", "USDT", "perp", "sell", 100.0, 0.01,
                  1.0, "42", 1, 2)
    liq = Liquidation("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", "BTC", "USDT", "perp", "long", 100.0, 1.0,
                      100.0, "okx:1", 1, 2)
    letter = DeadLetter("ingestor:okx", "{", "invalid JSON", 3)
    _validator("trade.schema.json").validate(codec.decode(codec.encode(trade)))
    _validator("liquidation.schema.json").validate(codec.decode(codec.encode(liq)))
    _validator("deadletter.schema.json").validate(codec.decode(codec.encode(letter)))
    bad = codec.decode(codec.encode(trade))
    bad["price"] = -1
    assert not _validator("trade.schema.json").is_valid(bad)


def test_asyncapi_declares_every_topic_with_its_schema_key_and_config() -> None:
    from tests.common.payloads import asyncapi_doc

    doc = asyncapi_doc()
    by_address = {c["address"]: c for c in doc["channels"].values()}
    messages = doc["components"]["messages"]
    for topic in ALL_TOPICS:
        channel = by_address[topic.name]
        [ref] = [m["$ref"] for m in channel["messages"].values()]
        message = messages[ref.rsplit("/", 1)[1]]
        assert message["payload"] == {"$ref": topic.schema}, topic.name
        assert message["bindings"]["kafka"]["key"]["description"] == topic.key, topic.name
        kafka = channel["bindings"]["kafka"]
        assert (kafka["topic"], kafka["partitions"]) == (topic.name, topic.partitions)
        assert kafka["topicConfiguration"] == {"cleanup.policy": [topic.cleanup_policy],
                                               "retention.ms": topic.retention_ms}
    operated = {op["channel"]["$ref"].rsplit("/", 1)[1] for op in doc["operations"].values()}
    assert {name for name, c in doc["channels"].items() if c["address"] in by_address} <= operated


def test_websocket_data_is_typed_by_family() -> None:
    from services.gateway.protocol import FAMILIES
    from tests.common.payloads import asyncapi_doc, message_validator

    records = {"asset": {"asset": "BTC", "price": 1.0, "change_24h_pct": None, "volume_24h_usd": 0.0,
                         "market_cap_usd": 1.0, "ts": 1, "ts_emit": 2},
               "sector": {"sector": "ai", "cap_usd": 1.0, "change_24h_pct": None, "volume_24h_usd": 0.0,
                          "volume_change_24h_pct": None, "members": [], "ts": 1, "ts_emit": 2}}
    for kind in ("snapshot", "update", "history"):
        validator = message_validator(kind)
        for family, data in records.items():
            message = {"type": kind, "channel": f"{family}:x", "seq": 3, "prev": None, "epoch": "0-0-1", "ts": 5,
                       "data": data}
            assert validator.is_valid(message), list(validator.iter_errors(message))
            other = "sector" if family == "asset" else "asset"
            assert not validator.is_valid({**message, "channel": f"{other}:x"}), (kind, family)
    schemas = asyncapi_doc()["components"]["schemas"]
    assert {name.removesuffix("Data") for name in schemas if name.endswith("Data")} == set(FAMILIES)


def test_undeclared_fields_are_found_in_nested_members() -> None:
    from services.common.topics import SECTOR_CAPS
    from tests.common.payloads import schema_of, undeclared_fields

    value = {"sector": "ai", "extra": 1, "members": [{"asset": "FET", "change_24h_pct": 1.0, "odd": 2}]}
    assert undeclared_fields(schema_of(SECTOR_CAPS), value) == [".extra", ".members[].odd"]


def test_asyncapi_document_is_valid_asyncapi_3() -> None:
    """The document against the AsyncAPI 3.0.0 JSON Schema of the spec itself (tests/common/data)."""
    from pathlib import Path

    from tests.common.payloads import asyncapi_doc

    spec = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json").read_text())
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in jsonschema.Draft7Validator(spec).iter_errors(asyncapi_doc())]
    assert errors == []
    broken = asyncapi_doc()
    broken["channels"]["ws"]["address"] = 42
    assert not jsonschema.Draft7Validator(spec).is_valid(broken)
