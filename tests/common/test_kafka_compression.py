"""CRYPTOPULSE_KAFKA_COMPRESSION: validated once, off on the embedded broker (Tansu returns the records
of compressed batches at wrong offsets), zstd on external Kafka, and applied to every producer.

The codec round trip runs through aiokafka's own record-batch builder and reader, so a missing codec
library (cramjam) fails here rather than at a producer's first batch on a real cluster."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from services.common.kafka import faust_broker_settings, producer_kwargs
from services.common.settings import EXTERNAL_COMPRESSION, KafkaSettings, SettingsError, load

EXTERNAL = {"CRYPTOPULSE_KAFKA_BOOTSTRAP": "kafka:9092"}
CODEC_IDS = {"gzip": DefaultRecordBatch.CODEC_GZIP, "snappy": DefaultRecordBatch.CODEC_SNAPPY,
             "lz4": DefaultRecordBatch.CODEC_LZ4, "zstd": DefaultRecordBatch.CODEC_ZSTD}


def test_unset_means_none_on_the_embedded_broker_and_zstd_on_external_kafka() -> None:
    assert EXTERNAL_COMPRESSION == "zstd"
    assert load(KafkaSettings, environ={}).compression is None
    assert load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_COMPRESSION": ""}).compression is None
    assert load(KafkaSettings, environ=EXTERNAL).compression == "zstd"
    assert load(KafkaSettings, environ={}, kafka_bootstrap="b1:9092,b2:9092").compression == "zstd"


def test_an_explicit_codec_is_used_on_external_kafka() -> None:
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        kafka = load(KafkaSettings, environ={**EXTERNAL, "CRYPTOPULSE_KAFKA_COMPRESSION": codec.upper()})
        assert (kafka.kafka_compression, kafka.compression) == (codec, codec)
    off = load(KafkaSettings, environ={**EXTERNAL, "CRYPTOPULSE_KAFKA_COMPRESSION": "none"})
    assert off.compression is None


def test_an_unknown_codec_is_a_one_line_error_listing_the_allowed_values() -> None:
    with pytest.raises(SettingsError) as caught:
        load(KafkaSettings, environ={**EXTERNAL, "CRYPTOPULSE_KAFKA_COMPRESSION": "brotli"})
    assert str(caught.value) == ("CRYPTOPULSE_KAFKA_COMPRESSION='brotli' is not one of "
                                 "none, gzip, snappy, lz4, zstd")


def test_a_codec_on_the_embedded_broker_is_refused_with_the_reason() -> None:
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        with pytest.raises(SettingsError) as caught:
            load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_COMPRESSION": codec})
        message = str(caught.value)
        assert message.startswith(f"CRYPTOPULSE_KAFKA_COMPRESSION={codec} needs an external Kafka "
                                  "(CRYPTOPULSE_KAFKA_BOOTSTRAP)"), message
        assert "embedded broker" in message and "wrong offsets" in message and "\n" not in message
    with pytest.raises(SettingsError, match="needs an external Kafka"):
        load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_BOOTSTRAP": ""}, kafka_compression="lz4")
    assert load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_COMPRESSION": "none"}).compression is None


def test_every_producer_gets_the_compression() -> None:
    embedded = load(KafkaSettings, environ={})
    external = load(KafkaSettings, environ=EXTERNAL)
    assert producer_kwargs(embedded)["compression_type"] is None
    assert producer_kwargs(external)["compression_type"] == "zstd"
    assert producer_kwargs(external, linger_ms=1)["compression_type"] == "zstd", "overrides keep it"
    assert faust_broker_settings(embedded)["producer_compression_type"] is None
    assert faust_broker_settings(external)["producer_compression_type"] == "zstd"


def test_the_clients_accept_the_codec() -> None:
    """aiokafka's producer refuses, at construction, a codec whose library is missing; Faust hands
    its setting to the same producer."""
    import faust

    external = load(KafkaSettings, environ=EXTERNAL)

    async def construct() -> None:
        producer = AIOKafkaProducer(**producer_kwargs(external))  # RuntimeError if cramjam is missing
        await producer.stop()

    asyncio.run(construct())
    app = faust.App("compression-test", **faust_broker_settings(external))
    assert app.conf.producer_compression_type == "zstd"


@pytest.mark.parametrize("codec", sorted(CODEC_IDS))
def test_a_record_batch_round_trips_through_the_codec(codec: str) -> None:
    """Built and read back by aiokafka's own record-batch code (what the producer sends and every
    consumer decodes): same keys, values and offsets; repetitive JSON records shrink."""
    records = [(f"asset:{i % 7}".encode(),
                orjson.dumps({"series": f"asset:{i % 7}", "interval": "1m", "open_time": 1_700_000_000_000 + i * 60_000,
                              "open": 100.0 + i, "close": 101.5 + i, "closed": i % 2 == 0}))
               for i in range(500)]
    plain = DefaultRecordBatchBuilder(magic=2, compression_type=DefaultRecordBatch.CODEC_NONE, is_transactional=False,
                                      producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=CODEC_IDS[codec], is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for offset, (key, value) in enumerate(records):
        for batch_builder in (plain, builder):
            assert batch_builder.append(offset, timestamp=None, key=key, value=value, headers=[]) is not None
    uncompressed = bytes(plain.build())
    compressed = bytes(builder.build())
    assert len(compressed) < len(uncompressed) / 2, (codec, len(compressed), len(uncompressed))
    batch = DefaultRecordBatch(compressed)
    assert batch.compression_type == CODEC_IDS[codec]
    assert [(r.offset, r.key, r.value) for r in batch] == [(i, k, v) for i, (k, v) in enumerate(records)]
