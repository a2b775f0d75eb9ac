"""Settings: one declaration per setting, read from ``CRYPTOPULSE_*`` environment variables.

Every service declares its settings as a frozen dataclass whose fields are made with
:func:`setting`. The environment variable of a field is ``CRYPTOPULSE_`` + the field name in
upper case; command-line flags override the environment (12-factor). Each class registers itself
(:func:`register`); ``services.catalog.all_env_vars`` lists every variable of every service.

A bad value is a :class:`SettingsError` whose one-line message names the variable. Settings are
loaded by the command that needs them, never while the command line is built, so a bad value of
one service's setting cannot break the commands of another. A ``secret`` setting can also be
read from a file named by ``<VARIABLE>_FILE`` (Docker/Kubernetes secrets), never both.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

ENV_PREFIX = "CRYPTOPULSE_"
FILE_SUFFIX = "_FILE"

T = TypeVar("T")

_REGISTERED: list[type[Any]] = []

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "a boolean (true/false, 1/0, yes/no, on/off)"}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


Check = Callable[[Any], "str | None"]


def setting(default: Any, help: str, *, choices: tuple[str, ...] = (), secret: bool = False,
            check: Check | None = None) -> Any:
    """Declare a setting field with its default and a one-line description.

    ``choices``: the allowed values (compared case-insensitively, stored as declared);
    ``secret``: also readable from ``<VARIABLE>_FILE`` and hidden from ``repr``;
    ``check``: returns why a (non-None) value is unusable, or None when it is fine.
    """
    metadata = {"help": help, "choices": choices, "secret": secret, "check": check}
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


def readable_file(value: Any) -> str | None:
    """``check`` for paths: the file must exist and be readable by this process."""
    if not os.path.isfile(value):
        return f"{value!r} is not a file"
    if not os.access(value, os.R_OK):
        return f"{value!r} is not readable"
    return None


def at_least(minimum: float) -> Check:
    """``check`` for numbers: the value must be ``minimum`` or more."""
    def check(value: Any) -> str | None:
        return None if value >= minimum else f"{value!r} is below the minimum {minimum:g}"
    return check


def register(cls: type[T]) -> type[T]:
    """Class decorator: remember a settings dataclass so its variables are documented."""
    _REGISTERED.append(cls)
    return cls


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _convert(raw: str, annotation: Any, name: str) -> Any:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if raw == "":
            return None
        return _convert(raw, args[0], name)
    try:
        if annotation is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if annotation is int:
            return int(raw)
        if annotation is float:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return value
        if origin is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        expected = _TYPE_NAMES.get(annotation, str(annotation))
        raise SettingsError(f"{env_name(name)}={raw!r} is not {expected}") from exc
    return raw


def _read_secret_file(variable: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{variable}={path!r} cannot be read ({exc.__class__.__name__})") from exc


def _raw_value(field: dataclasses.Field[Any], env: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, text) of a field from the environment (or its ``_FILE`` for a secret), if set."""
    variable = env_name(field.name)
    raw = env.get(variable)
    if not field.metadata.get("secret"):
        return None if raw is None else (variable, raw)
    file_variable = variable + FILE_SUFFIX
    path = env.get(file_variable)
    if path is not None and raw is not None:
        raise SettingsError(f"set either {variable} or {file_variable}, not both")
    if path is not None:
        return file_variable, _read_secret_file(file_variable, path)
    return None if raw is None else (variable, raw)


def _validated(field: dataclasses.Field[Any], variable: str, value: Any) -> Any:
    choices: tuple[str, ...] = field.metadata.get("choices", ())
    if choices and value is not None:
        matched = [c for c in choices if c.lower() == str(value).strip().lower()]
        if not matched:
            raise SettingsError(f"{variable}={value!r} is not one of {', '.join(choices)}")
        value = matched[0]
    check: Check | None = field.metadata.get("check")
    if check is not None and value is not None:
        problem = check(value)
        if problem:
            raise SettingsError(f"{variable}: {problem}")
    return value


def load(cls: type[T], environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build ``cls`` from defaults, then the environment, then non-None ``overrides`` (CLI flags).

    Every value is converted and checked here; a class may check combinations in its
    ``__post_init__`` (raising :class:`SettingsError`).
    """
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        found = _raw_value(field, env)
        variable = env_name(field.name)
        if found is not None:
            variable, raw = found
            values[field.name] = _validated(field, variable, _convert(raw, hints[field.name], field.name))
        override = overrides.get(field.name)
        if override is not None:
            values[field.name] = _validated(field, variable, override)
    return cls(**values)


def describe(cls: type[Any]) -> list[tuple[str, Any, str]]:
    """(environment variable, default, help) for every field of a settings class (and secret files)."""
    rows: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(cls):
        rows.append((env_name(f.name), f.default, f.metadata.get("help", "")))
        if f.metadata.get("secret"):
            rows.append((env_name(f.name) + FILE_SUFFIX, None, f"File holding {env_name(f.name)} (secrets mount)."))
    return rows


def registered() -> list[type[Any]]:
    """The settings classes registered so far: ``services.catalog`` imports every service's."""
    return list(_REGISTERED)


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSION_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
# zstd (level 3 in aiokafka) costs about a quarter of the encoding CPU of aiokafka's lz4 (level 9) and
# compresses the JSON records better (3.4x against 2.6x, docs/scaling.md); brokers read it since Kafka 2.1.
EXTERNAL_COMPRESSION = "zstd"


@register
@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    """Where Kafka is and how to reach it securely, shared by every service."""

    kafka_bootstrap: str | None = setting(
        None, "Kafka bootstrap servers (host:port,...). Unset: use/start the embedded broker."
    )
    broker_host: str = setting("127.0.0.1", "Embedded broker listen host (loopback by default).")
    broker_port: int = setting(19092, "Embedded broker listen port.")
    kafka_idempotence: bool | None = setting(
        None, "Idempotent producer. Unset: on for external Kafka, off on the embedded broker."
    )
    kafka_compression: str | None = setting(
        None, "Producer compression: none, gzip, snappy, lz4 or zstd. Unset: zstd on external Kafka, none on "
        "the embedded broker (which returns compressed batches at wrong offsets).", choices=COMPRESSION_CODECS)
    kafka_security_protocol: str = setting(
        "PLAINTEXT", "How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        choices=SECURITY_PROTOCOLS)
    kafka_ssl_cafile: str | None = setting(
        None, "CA bundle (PEM) that signed the brokers' certificates. Unset: the system trust store.",
        check=readable_file)
    kafka_ssl_certfile: str | None = setting(
        None, "Client certificate chain (PEM) for mutual TLS; may hold the key too.", check=readable_file)
    kafka_ssl_keyfile: str | None = setting(None, "Private key (PEM) of the client certificate.", check=readable_file)
    kafka_ssl_key_password: str | None = setting(None, "Password of an encrypted client key.", secret=True)
    kafka_ssl_check_hostname: bool = setting(
        True, "Check that the broker's certificate names the host connected to (keep it on).")
    kafka_sasl_mechanism: str = setting(
        "PLAIN", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.", choices=SASL_MECHANISMS)
    kafka_sasl_username: str | None = setting(None, "SASL user name (API key on Confluent Cloud).")
    kafka_sasl_password: str | None = setting(None, "SASL password (API secret on Confluent Cloud).", secret=True)
    log_level: str = setting("INFO", "Log level of every service (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = setting("text", "Log line format: text, or json (one JSON object per line, for containers).")

    def __post_init__(self) -> None:
        protocol = env_name("kafka_security_protocol") + "=" + self.kafka_security_protocol
        tls_files = [name for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
                     if getattr(self, name)]
        if tls_files and not self.tls:
            raise SettingsError(f"{env_name(tls_files[0])} is set but {protocol} does not use TLS "
                                "(use SSL or SASL_SSL)")
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise SettingsError(f"{env_name('kafka_ssl_keyfile')} needs {env_name('kafka_ssl_certfile')}")
        if self.sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise SettingsError(f"{protocol} needs {env_name('kafka_sasl_username')} and "
                                f"{env_name('kafka_sasl_password')} (or {env_name('kafka_sasl_password')}{FILE_SUFFIX})")
        if self.kafka_sasl_username and not self.sasl:
            raise SettingsError(f"{env_name('kafka_sasl_username')} is set but {protocol} does not use SASL "
                                "(use SASL_SSL or SASL_PLAINTEXT)")
        if self.embedded and self.kafka_compression not in (None, "none"):
            raise SettingsError(f"{env_name('kafka_compression')}={self.kafka_compression} needs an external Kafka "
                                f"({env_name('kafka_bootstrap')}): the embedded broker returns the records of "
                                "compressed batches at wrong offsets (use none or leave it unset)")

    @property
    def embedded(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"{self.broker_host}:{self.broker_port}"

    @property
    def idempotence(self) -> bool:
        if self.kafka_idempotence is not None:
            return self.kafka_idempotence
        return not self.embedded

    @property
    def compression(self) -> str | None:
        """The producers' ``compression_type`` (aiokafka, Faust): None means uncompressed."""
        codec = self.kafka_compression or ("none" if self.embedded else EXTERNAL_COMPRESSION)
        return None if codec == "none" else codec

    @property
    def tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")


@register
@dataclasses.dataclass(frozen=True)
class MetricsSettings:
    """How every service's Prometheus /metrics endpoint is served (each service has its own port)."""

    metrics_host: str = setting(
        "127.0.0.1", "Host every /metrics server binds: loopback by default; 0.0.0.0 in containers.")
    metrics_auth_username: str | None = setting(None, "Basic-auth user required to scrape /metrics, if set.")
    metrics_auth_password: str | None = setting(None, "Basic-auth password required to scrape /metrics.", secret=True)
    metrics_tls_certfile: str | None = setting(
        None, "Serve /metrics over HTTPS with this certificate chain (PEM; with ..._KEYFILE).", check=readable_file)
    metrics_tls_keyfile: str | None = setting(None, "Private key (PEM) of the /metrics certificate.",
                                              check=readable_file)
    metrics_tls_client_cafile: str | None = setting(
        None, "Require scrapers to present a client certificate signed by this CA (PEM).", check=readable_file)
    metrics_idle_timeout: float = setting(
        10.0, "Seconds a scrape connection may stay silent (headers, TLS handshake) before it is closed.")
    metrics_max_connections: int = setting(32, "Most scrape connections served at once; more are refused.")

    def __post_init__(self) -> None:
        if bool(self.metrics_auth_username) != bool(self.metrics_auth_password):
            raise SettingsError(f"{env_name('metrics_auth_username')} and {env_name('metrics_auth_password')} "
                                "go together")
        if bool(self.metrics_tls_certfile) != bool(self.metrics_tls_keyfile):
            raise SettingsError(f"{env_name('metrics_tls_certfile')} and {env_name('metrics_tls_keyfile')} go together")
        if self.metrics_tls_client_cafile and not self.metrics_tls_certfile:
            raise SettingsError(f"{env_name('metrics_tls_client_cafile')} needs {env_name('metrics_tls_certfile')}")
        if not self.metrics_idle_timeout > 0:
            raise SettingsError(f"{env_name('metrics_idle_timeout')} must be > 0")
        if self.metrics_max_connections < 1:
            raise SettingsError(f"{env_name('metrics_max_connections')} must be >= 1")

    @property
    def tls(self) -> bool:
        return bool(self.metrics_tls_certfile)
