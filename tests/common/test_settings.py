from __future__ import annotations

import pytest

from services.common.settings import KafkaSettings, SettingsError, all_env_vars, load


def test_defaults_mean_embedded_broker_without_idempotence() -> None:
    kafka = load(KafkaSettings, environ={})
    assert kafka.embedded
    assert kafka.bootstrap == "127.0.0.1:19092"
    assert kafka.idempotence is False


def test_environment_selects_external_kafka_with_idempotence() -> None:
    kafka = load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_BOOTSTRAP": "kafka:9092"})
    assert not kafka.embedded
    assert kafka.bootstrap == "kafka:9092"
    assert kafka.idempotence is True


def test_cli_override_beats_environment() -> None:
    kafka = load(KafkaSettings, environ={"CRYPTOPULSE_BROKER_PORT": "1234"}, broker_port=4321)
    assert kafka.broker_port == 4321


def test_environment_is_converted_to_the_declared_type() -> None:
    kafka = load(KafkaSettings, environ={"CRYPTOPULSE_BROKER_PORT": "1234", "CRYPTOPULSE_KAFKA_IDEMPOTENCE": "off"})
    assert kafka.broker_port == 1234
    assert kafka.idempotence is False


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CRYPTOPULSE_BROKER_PORT"):
        load(KafkaSettings, environ={"CRYPTOPULSE_BROKER_PORT": "not-a-port"})


def test_every_service_registers_its_settings() -> None:
    names = all_env_vars()
    for expected in ("CRYPTOPULSE_KAFKA_BOOTSTRAP", "CRYPTOPULSE_INGESTOR_METRICS_PORT",
                     "CRYPTOPULSE_PROCESSOR_METRICS_PORT", "CRYPTOPULSE_GATEWAY_PORT"):
        assert expected in names
