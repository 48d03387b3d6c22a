"""A real ``redis-server`` for the tests: a process of its own on a free loopback port.

No persistence (``--save ""``, ``--appendonly no``) and its working folder in a
temporary directory. ``stop`` and ``start`` again keep the port, so a test can
take the store away from running gateways and give it back. Every server
started is stopped by ``stop_all`` (the edge tests' session end), also after a
failure.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_running: set[RedisServer] = set()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """``redis-server`` on ``127.0.0.1:<port>``; ``url`` for clients and gateways."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError(
                "redis-server is not installed: run `sh tools/ensure-redis.sh` as root "
                "(make test does), or install Debian's redis-server package"
            )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = tempfile.TemporaryDirectory(prefix="deltagate-test-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        """Start the server and wait (a few seconds at most) until it answers ``PING``."""
        if self._process is not None:
            return self
        self._process = subprocess.Popen(
            [self.binary or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self._folder.name,
             "--daemonize", "no", "--logfile", str(Path(self._folder.name) / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        _running.add(self)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._pong():
                return self
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        log = Path(self._folder.name, "redis.log")
        self.stop()
        raise RuntimeError(f"redis-server did not start: {log.read_text() if log.exists() else ''}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); its data is gone, as after a crash."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        _running.discard(self)
        self._folder.cleanup()

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def stop_all() -> None:
    """Stop every server a test started and left running."""
    for server in list(_running):
        server.close()
