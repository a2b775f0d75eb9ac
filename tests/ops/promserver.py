"""A real Prometheus server (Debian's ``prometheus``) on loopback for the ops tests.

Its configuration is deploy/prometheus/prometheus.yml with the compose targets swapped for the
loopback ports of the processes under test, a 1 s scrape interval, and the real rules.yml.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from services.common.broker import free_port
from tests.ops.contract import PROMETHEUS_DIR, load_prometheus_config


def loopback_config(base: dict[str, Any], targets: dict[str, list[str]], interval: str = "1s") -> dict[str, Any]:
    """``base`` with each service job scraping ``targets[job]`` (static) and fast intervals."""
    config = copy.deepcopy(base)
    config["global"].update(scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval)
    config["rule_files"] = [str(PROMETHEUS_DIR / rule) for rule in base["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in targets:
            continue
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


class PrometheusServer:
    def __init__(self, targets: dict[str, list[str]], workdir: Path) -> None:
        self.port = free_port()
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(loopback_config(load_prometheus_config(), targets)))
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config_path}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready within {timeout} s:\n{self.output()}")

    def target_health(self) -> dict[str, str]:
        """job -> health of its (single) active target."""
        return {t["labels"]["job"]: t["health"] for t in self.api("targets", state="active")["activeTargets"]}

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        data = self.api("query", query=expr)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr: str) -> float | None:
        """The single value of a scalar-like query (``sum(...)``), or None while it has no result."""
        result = self.query(expr)
        return result[0][1] if result else None

    def range_values(self, expr: str, start: float, end: float) -> list[float]:
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="1")
        return [float(v) for r in data["result"] for _, v in r["values"]]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def wait_until(condition: Any, timeout: float, what: str, detail: Any = None, interval: float = 0.5) -> Any:
    """Poll ``condition()`` until it returns a truthy value; fail naming ``what`` and ``detail()``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    extra = f"\n{detail()}" if detail else ""
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r}){extra}")
