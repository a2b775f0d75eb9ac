from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from services.catalog import all_env_vars
from services.common.settings import KafkaSettings, MetricsSettings, SettingsError, load


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


def test_bad_values_are_one_line_errors_naming_the_variable() -> None:
    cases = {"CRYPTOPULSE_BROKER_PORT": ("abc", "not an integer"),
             "CRYPTOPULSE_KAFKA_IDEMPOTENCE": ("maybe", "not a boolean"),
             "CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": ("TLS", "not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")}
    for variable, (value, expected) in cases.items():
        with pytest.raises(SettingsError) as caught:
            load(KafkaSettings, environ={variable: value})
        assert str(caught.value).startswith(variable) and expected in str(caught.value)
        assert "\n" not in str(caught.value)
    with pytest.raises(SettingsError, match="CRYPTOPULSE_METRICS_IDLE_TIMEOUT='nan' is not a number"):
        load(MetricsSettings, environ={"CRYPTOPULSE_METRICS_IDLE_TIMEOUT": "nan"})


def test_choices_are_case_insensitive_and_stored_as_declared() -> None:
    kafka = load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                                         "CRYPTOPULSE_KAFKA_SASL_MECHANISM": "scram-sha-512",
                                         "CRYPTOPULSE_KAFKA_SASL_USERNAME": "svc",
                                         "CRYPTOPULSE_KAFKA_SASL_PASSWORD": "pw"})
    assert (kafka.kafka_security_protocol, kafka.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert kafka.tls and kafka.sasl
    assert "pw" not in repr(kafka), "secrets stay out of reprs (and logs)"


def test_a_secret_is_read_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    env = {"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CRYPTOPULSE_KAFKA_SASL_USERNAME": "svc",
           "CRYPTOPULSE_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    assert load(KafkaSettings, environ=env).kafka_sasl_password == "from-a-file"
    with pytest.raises(SettingsError, match="either CRYPTOPULSE_KAFKA_SASL_PASSWORD or .*_FILE, not both"):
        load(KafkaSettings, environ={**env, "CRYPTOPULSE_KAFKA_SASL_PASSWORD": "x"})
    with pytest.raises(SettingsError, match="CRYPTOPULSE_KAFKA_SASL_PASSWORD_FILE=.* cannot be read"):
        load(KafkaSettings, environ={**env, "CRYPTOPULSE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})
    assert "CRYPTOPULSE_KAFKA_SASL_PASSWORD_FILE" in all_env_vars()


def test_security_combinations_that_would_silently_fall_back_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    refused = {
        "CRYPTOPULSE_KAFKA_SSL_CAFILE is set but CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS":
            {"CRYPTOPULSE_KAFKA_SSL_CAFILE": str(ca)},
        "CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs CRYPTOPULSE_KAFKA_SASL_USERNAME":
            {"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
        "CRYPTOPULSE_KAFKA_SASL_USERNAME is set but CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL=SSL does not use SASL":
            {"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SSL", "CRYPTOPULSE_KAFKA_SASL_USERNAME": "svc"},
        "CRYPTOPULSE_KAFKA_SSL_CAFILE: '/nonexistent/ca.pem' is not a file":
            {"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SSL", "CRYPTOPULSE_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
        "CRYPTOPULSE_METRICS_AUTH_USERNAME and CRYPTOPULSE_METRICS_AUTH_PASSWORD go together":
            {"CRYPTOPULSE_METRICS_AUTH_USERNAME": "prom"},
    }
    for message, env in refused.items():
        cls = MetricsSettings if "METRICS" in message else KafkaSettings
        with pytest.raises(SettingsError) as caught:
            load(cls, environ=env)
        assert str(caught.value).startswith(message), str(caught.value)


def test_client_configurations_follow_the_security_settings(tmp_path: Path) -> None:
    from services.common.kafka import librdkafka_config, security_kwargs

    plain = load(KafkaSettings, environ={})
    assert security_kwargs(plain) == {"security_protocol": "PLAINTEXT"}
    assert librdkafka_config(plain)["security.protocol"] == "plaintext"
    scram = load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_BOOTSTRAP": "b:9096",
                                         "CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                                         "CRYPTOPULSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                                         "CRYPTOPULSE_KAFKA_SASL_USERNAME": "svc",
                                         "CRYPTOPULSE_KAFKA_SASL_PASSWORD": "pw"})
    kwargs = security_kwargs(scram)
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"], kwargs["sasl_plain_username"],
            kwargs["sasl_plain_password"]) == ("SASL_SSL", "SCRAM-SHA-512", "svc", "pw")
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED and kwargs["ssl_context"].check_hostname
    assert librdkafka_config(scram) == {
        "bootstrap.servers": "b:9096", "security.protocol": "sasl_ssl", "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "svc", "sasl.password": "pw", "ssl.endpoint.identification.algorithm": "https"}


def test_faust_gets_the_same_credentials() -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from services.common.kafka import faust_broker_settings

    assert "broker_credentials" not in faust_broker_settings(load(KafkaSettings, environ={}))
    scram = load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                                         "CRYPTOPULSE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                                         "CRYPTOPULSE_KAFKA_SASL_USERNAME": "svc",
                                         "CRYPTOPULSE_KAFKA_SASL_PASSWORD": "pw"})
    auth = credentials_to_aiokafka_auth(faust_broker_settings(scram)["broker_credentials"])
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["sasl_plain_username"],
            auth["sasl_plain_password"]) == ("SASL_SSL", "SCRAM-SHA-256", "svc", "pw")
    assert auth["ssl_context"] is not None
    tls = load(KafkaSettings, environ={"CRYPTOPULSE_KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert credentials_to_aiokafka_auth(faust_broker_settings(tls)["broker_credentials"])["security_protocol"] == "SSL"


def test_processor_numbers_below_their_minimum_are_refused() -> None:
    from services.processor.settings import ProcessorSettings

    assert load(ProcessorSettings, environ={}).processor_emit_interval == 0.2
    for variable, value in (("CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL", "-1"), ("CRYPTOPULSE_PROCESSOR_BATCH_SIZE", "0"),
                            ("CRYPTOPULSE_PROCESSOR_IDLE_SOURCE_SECONDS", "0"),
                            ("CRYPTOPULSE_PROCESSOR_MAX_PRICE_USD", "-5")):
        with pytest.raises(SettingsError, match=f"{variable}: .* is below the minimum"):
            load(ProcessorSettings, environ={variable: value})
    assert load(ProcessorSettings, environ={"CRYPTOPULSE_PROCESSOR_EMIT_INTERVAL": "0"}).processor_emit_interval == 0
