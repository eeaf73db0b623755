"""``noiseveil serve`` as a child process: for the load test, the tests and scripted demos.

It starts the server on a free loopback port, waits until ``/v1/health`` answers, and reads
the first admin token the server prints once into its log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        database_url: str | None = None,
        models: Sequence[str] | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir, self.database_url, self.models = Path(data_dir), database_url, models
        self.extra_args = list(extra_args)
        self.port = port or free_port()
        self.log = self.data_dir.parent / f"serve-{self.port}.log"
        self.start()

    def start(self, timeout: float = 120.0) -> None:
        command = [sys.executable, "-m", "noiseveil.app.cli", "serve", "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port)]
        if self.models:
            command += ["--models", *self.models]
        if self.database_url:
            command += ["--database-url", self.database_url]
        command += self.extra_args
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            # its own process group: a kill reaches every worker process too
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"noiseveil serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.3)
        raise RuntimeError(f"noiseveil serve did not answer within {timeout:.0f} s")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        """The first admin token, as ``serve`` printed it (once, at its first start)."""
        for line in self.log.read_text().splitlines():
            if line.startswith("first admin token"):
                return line.rsplit(" ", 1)[-1]
        raise RuntimeError("the server printed no first admin token (the database had one already)")

    def new_token(self, role: str, name: str) -> str:
        """A token of ``role``, made with the first admin token through the API."""
        from noiseveil.app.service.client import CloudClient

        with CloudClient(self.base, self.admin_token) as admin:
            return admin.new_token(name, role)["token"]

    def kill(self) -> None:
        """SIGKILL to the server and its workers: no shutdown handler runs (a power cut, as far
        as the server can tell)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
