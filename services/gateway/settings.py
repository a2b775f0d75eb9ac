"""Gateway settings (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class GatewaySettings:
    gateway_host: str = setting("127.0.0.1", "Websocket/HTTP listen host (0.0.0.0 in containers).")
    gateway_port: int = setting(8765, "Websocket/HTTP listen port (ws://HOST:PORT/ws, /healthz, /readyz).")
    gateway_metrics_port: int = setting(9303, "Gateway Prometheus /metrics port.")
