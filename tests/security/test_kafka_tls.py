"""Kafka over TLS for real: the services, the admin client, Faust and confluent-kafka all reach the
broker through a TLS handshake with a CA made in the test (mutual TLS: each presents a client
certificate), and a replay flows ingest -> process -> gateway.

Tansu 0.6.0 cannot serve TLS itself, so it listens in plaintext on loopback and advertises a
TLS-terminating proxy (tests/security/tlsproxy.py): clients never see a plaintext listener.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.errors import StartupError
from services.common.kafka import create_topics, librdkafka_config, wait_for_kafka
from services.common.settings import KafkaSettings, env_name
from services.supervisor import ensure_reference_data
from tests.e2e.stack import collect
from tests.ops.scrape import metrics_ports, service_env
from tests.security.pki import TestCA
from tests.security.tlsproxy import TLSProxy

CLIENT_NAME = "cryptopulse-service"


@dataclasses.dataclass
class TLSKafka:
    settings: KafkaSettings
    proxy: TLSProxy
    ca: TestCA

    def env(self) -> dict[str, str]:
        """The variables that make a service process use this TLS broker."""
        s = self.settings
        return {env_name("broker_port"): str(s.broker_port),
                env_name("kafka_security_protocol"): s.kafka_security_protocol,
                env_name("kafka_ssl_cafile"): str(s.kafka_ssl_cafile),
                env_name("kafka_ssl_certfile"): str(s.kafka_ssl_certfile),
                env_name("kafka_ssl_keyfile"): str(s.kafka_ssl_keyfile)}


@pytest.fixture
def tls_kafka(tmp_path: Path) -> Iterator[TLSKafka]:
    ca = TestCA(tmp_path)
    server = ca.server("127.0.0.1", "localhost")
    client = ca.client(CLIENT_NAME)
    plain_port, tls_port = free_port(), free_port()
    broker = EmbeddedBroker(port=plain_port, advertised=f"127.0.0.1:{tls_port}").start()
    proxy = TLSProxy(tls_port, ("127.0.0.1", plain_port), server, client_ca=ca.cafile).start()
    # Embedded mode (no bootstrap): the broker is Tansu, so no idempotence and short group timeouts.
    settings = KafkaSettings(broker_port=tls_port, kafka_security_protocol="SSL", kafka_ssl_cafile=str(ca.cafile),
                             kafka_ssl_certfile=str(client.cert), kafka_ssl_keyfile=str(client.key))
    try:
        yield TLSKafka(settings, proxy, ca)
    finally:
        proxy.stop()
        broker.stop()


def read_back(kafka: KafkaSettings, topic: str, timeout: float = 20) -> int:
    """Records of ``topic`` partition 0 read by confluent-kafka (librdkafka) over TLS."""
    consumer = Consumer(librdkafka_config(kafka, **{"group.id": "tls-reader", "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
        seen, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline and not seen:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                if message.error() is None:
                    seen += 1
        return seen
    finally:
        consumer.close()


def test_replay_flows_through_tls_to_the_gateway(tls_kafka: TLSKafka, services) -> None:  # type: ignore[no-untyped-def]
    kafka = tls_kafka.settings
    asyncio.run(wait_for_kafka(kafka, timeout=15))
    assert asyncio.run(create_topics(kafka)), "topics created by the admin client over TLS"
    assert asyncio.run(ensure_reference_data(kafka)) > 0, "reference data produced and checked over TLS"
    env = {**service_env(kafka.broker_port, metrics_ports()), **tls_kafka.env()}
    started = [services(name, env=env) for name in ("process", "gateway", "ingest")]

    url = f"ws://127.0.0.1:{env['CRYPTOPULSE_GATEWAY_PORT']}/ws"
    try:
        latest = asyncio.run(collect(url, ["asset:*", "liquidations:24h:all"],
                                     until=lambda got: any(c.startswith("asset:") for c in got)
                                     and "liquidations:24h:all" in got, timeout=90))
    except AssertionError:
        raise AssertionError("\n".join(f"--- {p.name}\n{p.output()[-2500:]}" for p in started)) from None
    assert latest["liquidations:24h:all"]["total_usd"] > 0
    assert read_back(kafka, topics.TRADES.name) > 0, "confluent-kafka reads the raw trades over TLS"
    for proc in started:
        assert proc.process.poll() is None, f"{proc.name} exited:\n{proc.output()[-2000:]}"
    assert tls_kafka.proxy.client_names == {CLIENT_NAME}, "every connection presented the client certificate"
    assert tls_kafka.proxy.handshakes >= 6, "admin, producers, consumers and Faust each made TLS handshakes"
    assert tls_kafka.proxy.tls_versions <= {"TLSv1.2", "TLSv1.3"}


def test_a_broker_certificate_from_another_ca_is_refused_in_one_line(tls_kafka: TLSKafka) -> None:
    system_trust = dataclasses.replace(tls_kafka.settings, kafka_ssl_cafile=None)
    with pytest.raises(StartupError) as caught:
        asyncio.run(wait_for_kafka(system_trust, timeout=2))
    message = str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and "CRYPTOPULSE_KAFKA_SSL_" in message
    assert "\n" not in message
