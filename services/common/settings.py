"""Settings: one declaration per setting, read from ``CRYPTOPULSE_*`` environment variables.

Every service declares its settings as a frozen dataclass whose fields are made with
:func:`setting`. The environment variable of a field is ``CRYPTOPULSE_`` + the field name in
upper case; command-line flags override the environment (12-factor). :func:`all_env_vars`
lists every variable the code reads, which the docs and the compose-file test use.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

ENV_PREFIX = "CRYPTOPULSE_"

T = TypeVar("T")

_REGISTERED: list[type[Any]] = []


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def setting(default: Any, help: str) -> Any:
    """Declare a setting field with its default and a one-line description."""
    return dataclasses.field(default=default, metadata={"help": help})


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
            return float(raw)
        if origin is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise SettingsError(f"{env_name(name)}={raw!r} is not a valid {annotation}") from exc
    return raw


def load(cls: type[T], environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build ``cls`` from defaults, then the environment, then non-None ``overrides`` (CLI flags)."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        raw = env.get(env_name(field.name))
        if raw is not None:
            values[field.name] = _convert(raw, hints[field.name], field.name)
        override = overrides.get(field.name)
        if override is not None:
            values[field.name] = override
    return cls(**values)


def describe(cls: type[Any]) -> list[tuple[str, Any, str]]:
    """(environment variable, default, help) for every field of a settings class."""
    return [
        (env_name(f.name), f.default, f.metadata.get("help", ""))
        for f in dataclasses.fields(cls)
    ]


def registered() -> list[type[Any]]:
    """Every settings class of every service (importing the services registers them)."""
    import services.common.service_settings  # noqa: F401  (registers the service classes)

    return list(_REGISTERED)


def all_env_vars() -> set[str]:
    return {name for cls in registered() for name, _, _ in describe(cls)}


@register
@dataclasses.dataclass(frozen=True)
class KafkaSettings:
    """Where Kafka is, shared by every service."""

    kafka_bootstrap: str | None = setting(
        None, "Kafka bootstrap servers (host:port,...). Unset: use/start the embedded broker."
    )
    broker_host: str = setting("127.0.0.1", "Embedded broker listen host (loopback by default).")
    broker_port: int = setting(19092, "Embedded broker listen port.")
    kafka_idempotence: bool | None = setting(
        None, "Idempotent producer. Unset: on for external Kafka, off on the embedded broker."
    )
    log_level: str = setting("INFO", "Log level of every service (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = setting("text", "Log line format: text, or json (one JSON object per line, for containers).")

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
