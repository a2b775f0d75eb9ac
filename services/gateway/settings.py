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
    gateway_max_connections: int = setting(0, "Most concurrent websocket connections; more are closed (4002). "
                                                 "0 = derived from the open-file limit, minus headroom.")
    gateway_max_subscriptions: int = setting(100, "Most subscriptions (channels or patterns) per connection.")
    gateway_max_frame_bytes: int = setting(4096, "Largest client frame accepted; larger ones close the connection (4002).")
    gateway_rate_limit: float = setting(20.0, "Client frames per second allowed, control frames included (burst of as "
                                              "many); a flood closes (4002).")
    gateway_queue_size: int = setting(1000, "Per-connection queue of unconflated messages; overflow = slow consumer (4003).")
    gateway_max_queued_bytes: int = setting(8 * 2**20, "Per-connection byte budget of queued messages (history and "
                                                       "snapshots count); beyond it the connection closes.")
    gateway_history_size: int = setting(1000, "Records retained per channel for resume and 'history'.")
    gateway_heartbeat_seconds: float = setting(15.0, "Interval of app-level heartbeats and protocol pings; a ping "
                                                     "unanswered by the next one closes the connection.")
    gateway_auth_secret: str | None = setting(None, "HS256 secret: when set (or a public key), a JWT is required.")
    gateway_auth_public_key: str | None = setting(None, "RS256 public key (PEM text or @path): a JWT is required.")
    gateway_auth_issuer: str | None = setting(None, "Required JWT issuer ('iss'), if set.")
    gateway_auth_audience: str | None = setting(None, "Required JWT audience ('aud'), if set; unset = 'aud' ignored.")
    gateway_auth_max_lifetime_seconds: float | None = setting(
        86400.0, "Longest JWT lifetime accepted (exp - iat, or exp - now without iat); empty = unbounded.")
    gateway_allowed_origins: tuple[str, ...] = setting((), "Allowed Origin headers (comma list); empty = any.")
    gateway_allow_missing_origin: bool = setting(True, "With an Origin allow-list: accept clients that send no Origin "
                                                       "(non-browser clients; browsers always send one).")

    @property
    def local_ws_url(self) -> str:
        """The websocket URL of a gateway on this machine (default of the CLI clients)."""
        return f"ws://127.0.0.1:{self.gateway_port}/ws"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.gateway_auth_secret or self.gateway_auth_public_key)
