"""Kafka over TLS and SASL for real: the services, the admin client, Faust and confluent-kafka all
reach the broker through a TLS handshake with a CA made in the test (mutual TLS: each presents a
client certificate) and a SCRAM exchange, and a replay flows ingest -> process -> gateway.

Tansu 0.6.0 can serve neither TLS nor SASL users itself, so it listens in plaintext on loopback and
advertises a TLS/SASL-terminating proxy (tests/security/proxy.py): clients never see a plaintext
listener, and the proxy checks every SASL exchange (SCRAM proofs, PLAIN passwords).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from services.common import topics
from services.common.broker import EmbeddedBroker, free_port
from services.common.errors import StartupError
from services.common.kafka import create_topics, librdkafka_config, producer_kwargs, wait_for_kafka
from services.common.settings import FILE_SUFFIX, KafkaSettings, env_name
from services.supervisor import ensure_reference_data
from tests.e2e.stack import collect
from tests.ops.scrape import metrics_ports, service_env
from tests.security.pki import TestCA
from tests.security.proxy import SecureProxy
from tests.security.saslgate import SaslUsers

CLIENT_NAME = "cryptopulse-service"
USER, PASSWORD = "cryptopulse", "correct horse battery staple"


@dataclasses.dataclass
class SecureKafka:
    settings: KafkaSettings
    proxy: SecureProxy
    ca: TestCA
    password_file: Path

    def env(self) -> dict[str, str]:
        """The variables that make a service process use this broker (the password from its file)."""
        s = self.settings
        env = {env_name("broker_port"): str(s.broker_port),
               env_name("kafka_security_protocol"): s.kafka_security_protocol}
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "kafka_sasl_mechanism",
                     "kafka_sasl_username"):
            if getattr(s, name):
                env[env_name(name)] = str(getattr(s, name))
        if s.kafka_sasl_password:
            env[env_name("kafka_sasl_password") + FILE_SUFFIX] = str(self.password_file)
        return env


Start = Callable[..., SecureKafka]


@pytest.fixture
def secure_kafka(tmp_path: Path) -> Iterator[Start]:
    """Factory: ``secure_kafka("SASL_SSL", "SCRAM-SHA-512")`` starts Tansu behind a proxy that serves it."""
    stop: list[Callable[[], None]] = []

    def start(protocol: str, mechanism: str = "PLAIN", users: tuple[str, ...] = ()) -> SecureKafka:
        ca = TestCA(tmp_path)
        tls = protocol in ("SSL", "SASL_SSL")
        sasl = SaslUsers() if protocol.startswith("SASL_") else None
        for name in (users or (mechanism,)) if sasl else ():
            sasl.add(name, USER, PASSWORD)  # type: ignore[union-attr]
        plain_port, secure_port = free_port(), free_port()
        broker = EmbeddedBroker(port=plain_port, advertised=f"127.0.0.1:{secure_port}").start()
        stop.append(broker.stop)
        proxy = SecureProxy(secure_port, ("127.0.0.1", plain_port), ca.server("127.0.0.1") if tls else None,
                            client_ca=ca.cafile if tls else None, sasl=sasl).start()
        stop.append(proxy.stop)
        client = ca.client(CLIENT_NAME)
        password_file = tmp_path / "kafka-password"
        password_file.write_text(PASSWORD + "\n")
        tls_files = {"kafka_ssl_cafile": str(ca.cafile), "kafka_ssl_certfile": str(client.cert),
                     "kafka_ssl_keyfile": str(client.key)} if tls else {}
        sasl_fields = {"kafka_sasl_mechanism": mechanism, "kafka_sasl_username": USER,
                       "kafka_sasl_password": PASSWORD} if sasl else {}
        # Embedded mode (no bootstrap): the broker is Tansu, so no idempotence and short group timeouts.
        settings = KafkaSettings(broker_port=secure_port, kafka_security_protocol=protocol, **tls_files,
                                 **sasl_fields)
        return SecureKafka(settings, proxy, ca, password_file)

    yield start
    for action in reversed(stop):
        action()


def read_back(kafka: KafkaSettings, topic: str, partitions: int, timeout: float = 20) -> int:
    """Records of ``topic`` read by confluent-kafka (librdkafka) with ``kafka``'s security settings."""
    consumer = Consumer(librdkafka_config(kafka, **{"group.id": "secure-reader", "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        seen, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline and not seen:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                if message.error() is None:
                    seen += 1
                elif message.error().fatal():
                    raise KafkaException(message.error())
        return seen
    finally:
        consumer.close()


@pytest.mark.slow
def test_replay_flows_through_tls_and_scram_to_the_gateway(secure_kafka: Start, services) -> None:  # type: ignore[no-untyped-def]
    secure = secure_kafka("SASL_SSL", "SCRAM-SHA-512")
    kafka = secure.settings
    asyncio.run(wait_for_kafka(kafka, timeout=15))
    assert asyncio.run(create_topics(kafka)), "topics created by the admin client"
    assert asyncio.run(ensure_reference_data(kafka)) > 0, "reference data produced and checked"
    env = {**service_env(kafka.broker_port, metrics_ports()), **secure.env()}
    assert "CRYPTOPULSE_KAFKA_SASL_PASSWORD_FILE" in env and "CRYPTOPULSE_KAFKA_SASL_PASSWORD" not in env
    started = [services(name, env=env) for name in ("process", "gateway", "ingest")]

    url = f"ws://127.0.0.1:{env['CRYPTOPULSE_GATEWAY_PORT']}/ws"
    try:
        latest = asyncio.run(collect(url, ["asset:*", "liquidations:24h:all"],
                                     until=lambda got: any(c.startswith("asset:") for c in got)
                                     and "liquidations:24h:all" in got, timeout=90))
    except AssertionError:
        raise AssertionError("\n".join(f"--- {p.name}\n{p.output()[-2500:]}" for p in started)) from None
    assert latest["liquidations:24h:all"]["total_usd"] > 0
    assert read_back(kafka, topics.TRADES.name, topics.TRADES.partitions) > 0, "confluent-kafka reads the trades"
    for proc in started:
        assert proc.process.poll() is None, f"{proc.name} exited:\n{proc.output()[-2000:]}"
    proxy = secure.proxy
    assert proxy.client_names == {CLIENT_NAME}, "every connection presented the client certificate"
    assert proxy.tls_versions <= {"TLSv1.2", "TLSv1.3"}
    assert set(proxy.authenticated) == {f"SCRAM-SHA-512 {USER}"} and not proxy.sasl_failures
    assert sum(proxy.authenticated.values()) >= 6, "admin, producers, consumers and Faust each authenticated"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_sasl_mechanism_with_aiokafka_and_librdkafka(secure_kafka: Start, mechanism: str) -> None:
    secure = secure_kafka("SASL_PLAINTEXT", mechanism)
    kafka = secure.settings

    async def produce() -> None:
        await wait_for_kafka(kafka, timeout=10)
        await create_topics(kafka, [topics.DEADLETTER])
        producer = AIOKafkaProducer(**producer_kwargs(kafka))
        await producer.start()
        try:
            await producer.send_and_wait(topics.DEADLETTER.name, b'{"probe": 1}', partition=0)
        finally:
            await producer.stop()

    asyncio.run(produce())
    assert read_back(kafka, topics.DEADLETTER.name, 1) == 1
    assert set(secure.proxy.authenticated) == {f"{mechanism} {USER}"}

    wrong = dataclasses.replace(kafka, kafka_sasl_password="wrong")
    with pytest.raises(StartupError) as caught:
        asyncio.run(wait_for_kafka(wrong, timeout=2))
    assert "Authentication failed" in str(caught.value) and "\n" not in str(caught.value)
    assert secure.proxy.sasl_failures


def test_tls_with_the_right_ca_works_and_another_ca_is_refused_in_one_line(secure_kafka: Start) -> None:
    kafka = secure_kafka("SSL").settings
    asyncio.run(wait_for_kafka(kafka, timeout=10))
    assert asyncio.run(create_topics(kafka, [topics.DEADLETTER])) == [topics.DEADLETTER.name]
    system_trust = dataclasses.replace(kafka, kafka_ssl_cafile=None)
    with pytest.raises(StartupError) as caught:
        asyncio.run(wait_for_kafka(system_trust, timeout=2))
    message = str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and "CRYPTOPULSE_KAFKA_SSL_" in message
    assert "\n" not in message
