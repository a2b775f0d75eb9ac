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
