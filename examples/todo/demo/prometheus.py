"""A real Prometheus scraping the demo stack and evaluating deploy/observability/alerts.yml.

Prometheus scrapes over TCP only, and the replicas listen on Unix sockets. Rather than
give each replica a TCP listener too (`TODO_METRICS_ADDRESS` would, but every replica
reads one environment and would need a port of its own), a second, tiny nginx serves
each replica's `/metrics`, and nothing else, on a loopback port of its own: the scrape
goes through nginx as the traffic does, and no other path of a replica becomes
reachable over TCP (the replicas trust forwarded headers from every Unix peer). The
worker has no HTTP server of its own: the stack starts it with `TODO_METRICS_ADDRESS`.

Scrapes and rule evaluations run every second, so an alert with `for: 10s` fires about
ten seconds after its condition starts. The alert rules are the shipped file, unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from demo import nginx
from demo.processes import ChildFailed, run, spawn
from demo.stack import _wait_until_ok  # the stack's own readiness poll, same package

if TYPE_CHECKING:
    from demo.processes import Child
    from demo.stack import Stack

__all__ = ("ALERT_RULES", "Prometheus")

ALERT_RULES = Path(__file__).resolve().parents[1] / "deploy" / "observability" / "alerts.yml"
_INTERVAL = "1s"
_SCRAPED_TIMEOUT = 30.0
_POLL = 0.1


class Prometheus:
    """Prometheus (the Debian package's binary) and the scrape nginx, children of `stack`.

    `start()` after the stack started; the stack's `stop()` stops both with the rest.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.url = ""
        """Where Prometheus answers, e.g. `http://127.0.0.1:40123`."""
        self.targets: dict[str, str] = {}
        """Instance name (`app-1`, ..., `worker`) -> the `host:port` Prometheus scrapes."""
        self._child: Child | None = None
        self._env = dict(os.environ)

    async def start(self) -> None:
        """Start the scrape nginx and Prometheus; return once it scraped every target."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise ChildFailed("prometheus is not installed (apt-get install prometheus)")
        await self._start_scrape_nginx()
        self.targets["worker"] = self.stack.worker_metrics
        directory = self.stack.run_dir / "prometheus"
        directory.mkdir()
        config = directory / "prometheus.yml"
        config.write_text(json.dumps(self._config(), indent=2))  # JSON is YAML
        check = ["promtool", "check", "config", str(config)]
        await run("promtool", check, self._env, self.stack.logs)
        self.url = f"http://{_loopback_port()}"
        argv = [
            binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
        ]  # fmt: skip
        self._child = await spawn("prometheus", argv, self._env, self.stack.logs)
        self.stack.children.append(self._child)
        await _wait_until_ok(self._child, f"{self.url}/-/ready")
        await self._until_scraped()
        self.stack.say(f"prometheus on {self.url}, scraping {len(self.targets)} targets every 1 s")

    async def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus has now (`/api/v1/alerts`): pending and firing."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.url}/api/v1/alerts")
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return alerts

    async def target_health(self) -> dict[str, str]:
        """Each scraped instance's health now (`up`, `down` or `unknown` before a scrape)."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.url}/api/v1/targets")
        response.raise_for_status()
        return {
            target["labels"]["instance"]: target["health"]
            for target in response.json()["data"]["activeTargets"]
        }

    async def _until_scraped(self) -> None:
        """Wait for a first successful scrape of every target.

        Prometheus is ready before it scrapes anything: its service discovery hands the
        targets over at most every 5 s, so the first samples come up to 5 s later.
        """
        assert self._child is not None
        deadline = time.monotonic() + _SCRAPED_TIMEOUT
        while (health := await self.target_health()) != dict.fromkeys(self.targets, "up"):
            self._child.check_running()
            if time.monotonic() > deadline:
                raise ChildFailed(f"prometheus: not every target scraped up: {health}")
            await asyncio.sleep(_POLL)

    async def firing(self, name: str) -> list[dict[str, Any]]:
        """The firing alerts called `name`."""
        return [
            alert
            for alert in await self.alerts()
            if alert["labels"]["alertname"] == name and alert["state"] == "firing"
        ]

    def _config(self) -> dict[str, Any]:
        def static(names: list[str]) -> list[dict[str, Any]]:
            return [
                {"targets": [self.targets[name]], "labels": {"instance": name}} for name in names
            ]

        replicas = [name for name in self.targets if name != "worker"]
        return {
            "global": {"scrape_interval": _INTERVAL, "evaluation_interval": _INTERVAL},
            "rule_files": [str(ALERT_RULES)],
            "scrape_configs": [
                {"job_name": "todo-app", "static_configs": static(replicas)},
                {"job_name": "todo-worker", "static_configs": static(["worker"])},
            ],
        }

    async def _start_scrape_nginx(self) -> None:
        prefix = self.stack.run_dir / "nginx-scrape"
        prefix.mkdir()
        servers = []
        for name, path in self.stack.replicas.items():
            self.targets[name] = address = _loopback_port()
            servers.append(
                f"server {{ listen {address}; "
                f"location = /metrics {{ proxy_pass http://unix:{path}:/metrics; }} "
                "location / { return 404; } }"
            )
        (prefix / "nginx.conf").write_text(
            _SCRAPE_CONFIG.replace("SERVERS", "\n    ".join(servers))
        )
        account = nginx.unprivileged_account()
        if account is not None:  # nginx runs as nobody: its prefix must be its own
            os.chown(prefix, account.pw_uid, account.pw_gid)
        await run("nginx-scrape-test", nginx.command(prefix, test=True), self._env, self.stack.logs)
        child = await spawn("nginx-scrape", nginx.command(prefix), self._env, self.stack.logs)
        self.stack.children.append(child)


def _loopback_port() -> str:
    """A port on 127.0.0.1 that is free now, as `host:port`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


_SCRAPE_CONFIG = """\
# Each replica's /metrics on a loopback port of its own (demo/prometheus.py).
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    SERVERS
}
"""
