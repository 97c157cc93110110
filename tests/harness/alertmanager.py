"""The real Alertmanager binary (Debian `prometheus-alertmanager`) on loopback: tests, bench."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from tests.harness.world import free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def webhook_config(bot_url: str, token: str, *, group_by: str = "['node']") -> str:
    return f"""
route:
  receiver: bot
  group_by: {group_by}
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: bot
    webhook_configs:
      - url: {bot_url}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


class AlertmanagerProcess:
    def __init__(self, config: str, workdir: Path) -> None:
        if BINARY is None:
            raise RuntimeError("prometheus-alertmanager is not installed")
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.log = workdir / "alertmanager.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20) -> None:
        assert BINARY is not None
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(self.config)
        storage = self.workdir / "data"
        storage.mkdir(exist_ok=True)
        log = self.log.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            BINARY,
            f"--config.file={config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",
            "--log.level=warn",
            stdout=log,
            stderr=log,
            env={k: v for k, v in os.environ.items() if not k.startswith("HH_")},
        )
        log.close()
        async with asyncio.timeout(timeout), aiohttp.ClientSession() as http:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"alertmanager exited:\n{self.log.read_text()}")
                try:
                    async with http.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        url = f"{self.url}/api/v2/alerts"
        async with aiohttp.ClientSession() as http, http.post(url, json=alerts) as response:
            assert response.status == 200, await response.text()

    async def silences(self) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v2/silences"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            response.raise_for_status()
            data: list[dict[str, Any]] = await response.json()
            return data
