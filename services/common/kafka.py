"""Kafka clients configured once for every service: embedded broker or a real cluster.

Embedded-mode differences (documented in the README, see BROKER_NOTES.md):
- no idempotent producer (Tansu rejects InitProducerId), so ``enable_idempotence`` is off;
- group joins wait the full rebalance timeout, so Faust gets short rebalance/session timeouts;
- no producer compression (Tansu returns compressed batches at wrong offsets): zstd on external Kafka
  (``KafkaSettings.compression``, aiokafka ``compression_type`` and Faust ``producer_compression_type``).

Security (TLS, SASL) comes from :class:`KafkaSettings` and reaches every client through this
module: aiokafka producers, consumers and admin clients (:func:`security_kwargs`), Faust
(:func:`faust_broker_settings`) and librdkafka clients (:func:`librdkafka_config`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from services.common.errors import StartupError
from services.common.settings import KafkaSettings, SettingsError, env_name
from services.common.topics import ALL_TOPICS, Topic

PRODUCER_BATCH_BYTES = 512 * 1024
"""Largest record batch a producer builds per partition. aiokafka keeps one produce request in
flight per broker and at most one batch per partition in it, and a second batch for a partition
waits until the first has been sent: with Faust's default of 16 KB, a flush of a few thousand
candles and indicators waited a broker round trip per 16 KB (``bench.scenario_e2e``: the embedded
broker's CPU to the final state fell from 43 to 15 s with larger batches). Half of Kafka's default
``message.max.bytes``, so a full batch is accepted by a stock broker."""

EMBEDDED_FAUST_SETTINGS: dict[str, Any] = {
    "broker_rebalance_timeout": 3.0,
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 1.0,
}


@functools.lru_cache(maxsize=8)
def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The client TLS context of ``kafka`` (None without TLS): verifies the brokers, optional client cert."""
    if not kafka.tls:
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=kafka.kafka_ssl_cafile)
    except ssl.SSLError as exc:
        raise SettingsError(f"{env_name('kafka_ssl_cafile')}: no usable CA certificate ({exc.reason})") from exc
    context.check_hostname = kafka.kafka_ssl_check_hostname
    if kafka.kafka_ssl_certfile:
        try:
            context.load_cert_chain(kafka.kafka_ssl_certfile, kafka.kafka_ssl_keyfile, kafka.kafka_ssl_key_password)
        except ssl.SSLError as exc:
            raise SettingsError(f"{env_name('kafka_ssl_certfile')}/{env_name('kafka_ssl_keyfile')}: the client "
                                f"certificate and key do not load ({exc.reason})") from exc
    return context


def security_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """aiokafka arguments (producer, consumer, admin) for the configured protocol, TLS and SASL."""
    kwargs: dict[str, Any] = {"security_protocol": kafka.kafka_security_protocol}
    if kafka.tls:
        kwargs["ssl_context"] = ssl_context(kafka)
    if kafka.sasl:
        kwargs.update(sasl_mechanism=kafka.kafka_sasl_mechanism, sasl_plain_username=kafka.kafka_sasl_username,
                      sasl_plain_password=kafka.kafka_sasl_password)
    return kwargs


def librdkafka_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """The same connection for librdkafka clients (confluent-kafka): for tests and downstream users."""
    config: dict[str, Any] = {"bootstrap.servers": kafka.bootstrap,
                              "security.protocol": kafka.kafka_security_protocol.lower()}
    if kafka.tls:
        optional = {"ssl.ca.location": kafka.kafka_ssl_cafile, "ssl.certificate.location": kafka.kafka_ssl_certfile,
                    "ssl.key.location": kafka.kafka_ssl_keyfile, "ssl.key.password": kafka.kafka_ssl_key_password}
        config.update({key: value for key, value in optional.items() if value})
        config["ssl.endpoint.identification.algorithm"] = "https" if kafka.kafka_ssl_check_hostname else "none"
    if kafka.sasl:
        config.update({"sasl.mechanisms": kafka.kafka_sasl_mechanism, "sasl.username": kafka.kafka_sasl_username,
                       "sasl.password": kafka.kafka_sasl_password})
    config.update(overrides)
    return config


def producer_kwargs(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """Durable by default: acks=all, idempotence where the broker supports it, batched with linger."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        **security_kwargs(kafka),
        "acks": "all",
        "enable_idempotence": kafka.idempotence,
        "compression_type": kafka.compression,
        "linger_ms": 5,
        "max_batch_size": PRODUCER_BATCH_BYTES,
        "request_timeout_ms": 30_000,
    }
    kwargs.update(overrides)
    return kwargs


def consumer_kwargs(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        **security_kwargs(kafka),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    if kafka.embedded:
        kwargs.update(session_timeout_ms=10_000, heartbeat_interval_ms=1_000, rebalance_timeout_ms=3_000)
    kwargs.update(overrides)
    return kwargs


def faust_broker_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """Settings for ``faust.App(...)``: the broker URL, its credentials and, embedded only, short group timeouts."""
    settings: dict[str, Any] = {
        "broker": ",".join(f"kafka://{host}" for host in kafka.bootstrap.split(",")),
        "producer_acks": -1,
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
        "producer_compression_type": kafka.compression,
    }
    credentials = faust_credentials(kafka)
    if credentials is not None:
        settings["broker_credentials"] = credentials
    if kafka.embedded:
        settings.update(EMBEDDED_FAUST_SETTINGS)
    return settings


def faust_credentials(kafka: KafkaSettings) -> Any:
    """Faust's ``broker_credentials`` for the configured protocol (None for PLAINTEXT)."""
    import faust  # imported here: only the processor needs it, and it is slow to import

    if kafka.sasl:
        return faust.SASLCredentials(username=kafka.kafka_sasl_username, password=kafka.kafka_sasl_password,
                                     ssl_context=ssl_context(kafka), mechanism=kafka.kafka_sasl_mechanism)
    if kafka.tls:
        return faust.SSLCredentials(ssl_context(kafka))
    return None


def admin_client(kafka: KafkaSettings | str, **overrides: Any) -> AIOKafkaAdminClient:
    """An aiokafka admin client for ``kafka`` (a bare bootstrap string means PLAINTEXT)."""
    kafka = as_settings(kafka)
    return AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **security_kwargs(kafka), **overrides)


def as_settings(kafka: KafkaSettings | str) -> KafkaSettings:
    """Settings for a bare ``host:port[,...]`` bootstrap string (PLAINTEXT); settings pass through."""
    return KafkaSettings(kafka_bootstrap=kafka) if isinstance(kafka, str) else kafka


def make_producer(kafka: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**producer_kwargs(kafka, **overrides))


def make_consumer(kafka: KafkaSettings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **consumer_kwargs(kafka, **overrides))


class _QuietConnectionErrors(logging.Handler):
    """Hold back aiokafka's per-attempt connection errors while we poll, keeping the last one:
    aiokafka's bootstrap error says only "Unable to bootstrap", the cause (a TLS verification or
    SASL failure, a refused connection) is in what it logged."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()

    def __enter__(self) -> _QuietConnectionErrors:
        self.logger = logging.getLogger("aiokafka")
        self.saved = (self.logger.level, self.logger.propagate)
        self.logger.setLevel(logging.ERROR)
        self.logger.propagate = False
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]


async def wait_for_kafka(kafka: KafkaSettings | str, timeout: float = 20.0) -> None:
    """Return once Kafka answers metadata, else raise a one-line :class:`StartupError`."""
    kafka = as_settings(kafka)
    deadline = time.monotonic() + timeout
    last = "timeout"
    quiet = _QuietConnectionErrors()
    while time.monotonic() < deadline:
        admin = admin_client(kafka, request_timeout_ms=3000)
        try:
            with quiet:
                await admin.start()
            await admin.close()
            return
        except (KafkaError, OSError) as exc:
            last = quiet.last or f"{type(exc).__name__}: {exc}"
            try:
                await admin.close()
            except Exception:  # closing a half-started client may fail; it holds nothing then
                pass
            await asyncio.sleep(0.5)
    security = "" if kafka.kafka_security_protocol == "PLAINTEXT" else \
        f" and the {kafka.kafka_security_protocol} settings (CRYPTOPULSE_KAFKA_SSL_*, CRYPTOPULSE_KAFKA_SASL_*)"
    reason = " ".join(last.split())[:200]
    raise StartupError(
        f"Kafka at {kafka.bootstrap} is unreachable ({reason}): check "
        f"CRYPTOPULSE_KAFKA_BOOTSTRAP / --kafka{security}, or unset it to use the embedded broker"
    )


async def create_topics(kafka: KafkaSettings | str, topics: Iterable[Topic] = ALL_TOPICS,
                        replication_factor: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the names created (idempotent)."""
    admin = admin_client(kafka, request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise StartupError(f"Kafka at {as_settings(kafka).bootstrap} is unreachable: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t.name not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(name=t.name, num_partitions=t.partitions, replication_factor=replication_factor,
                     topic_configs=t.config)
            for t in wanted
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        return [t.name for t in wanted]
    finally:
        await admin.close()


async def describe_topics(kafka: KafkaSettings | str) -> dict[str, int]:
    """Topic name -> partition count, for every topic on the cluster."""
    admin = admin_client(kafka, request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise StartupError(f"Kafka at {as_settings(kafka).bootstrap} is unreachable: {exc}") from exc
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()
