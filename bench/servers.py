"""The servers under test, each a process of its own on loopback, and what they cost.

A variant is how one server is started: the gateway through its own command
(``deltagate serve --config``), the floor (``bench.floor``) and the baselines
(``bench.baseline``: the gateway with a part left out) with the same
configuration file, each with the environment the variant adds. Adding a
variant is one entry in ``VARIANTS``.

CPU is read from the operating system (``psutil``, which comes with pgserver)
for the server process and for every PostgreSQL process, so a table can say
how many milliseconds of each a request costs, which on a shared 2-core
machine is steadier than throughput alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: The project's root: servers and the load generator run from here, so ``bench`` imports.
ROOT = Path(__file__).resolve().parent.parent

#: Tracing off, the standard way (``gateway.telemetry.spans``): trace ids only, no span kept.
NO_TRACING = {"OTEL_TRACES_EXPORTER": "none"}


@dataclass(frozen=True, kw_only=True)
class Variant:
    """How one server is started.

    Attributes:
        key: the name used in tables, JSON and ``--variants``.
        label: what it is, in a few words.
        command: the module to run with ``python -m``, and its first arguments
            (``--config`` and ``--port`` follow).
        env: environment the variant adds to the run's.
        same_data: its ``data`` must equal the gateway's for the same request
            (the check before timing); False for a baseline without the policy.
        configured: it takes the run's configuration file (``--config``).
        program: the command that starts it when it is not a Python module of this
            project (a peer such as PostGraphile; ``--port`` follows); set at run time.
        operations: the only operations it answers (None: all).
    """

    key: str
    label: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    same_data: bool = True
    configured: bool = True
    program: tuple[str, ...] | None = None
    operations: tuple[str, ...] | None = None


VARIANTS = {
    v.key: v
    for v in (
        Variant(
            key="gateway",
            label="deltagate serve: policy, audit log and tracing on, as deployed",
            command=("gateway.edge.cli", "serve"),
        ),
        Variant(
            key="floor",
            label="hand-written Starlette + asyncpg + orjson, same SQL and masking",
            command=("bench.floor",),
        ),
        Variant(
            key="nobatch",
            label="the gateway with dataloaders off (one query per key)",
            command=("gateway.edge.cli", "serve"),
            env={"DELTAGATE_BATCHING": "0"},
        ),
        Variant(
            key="untraced",
            label="the gateway without tracing (policy and audit log on)",
            command=("gateway.edge.cli", "serve"),
            env=NO_TRACING,
        ),
        Variant(
            key="unaudited",
            label="the gateway without audit log and tracing (policy on)",
            command=("bench.baseline", "--no-audit"),
            env=NO_TRACING,
        ),
        Variant(
            key="bare",
            label="the gateway without policy, audit log and tracing",
            command=("bench.baseline", "--no-audit", "--no-policy"),
            env=NO_TRACING,
            same_data=False,
        ),
        Variant(
            key="postgraphile",
            label="PostGraphile 5 (Amber preset) on Node 22 over Shanghai's tables: the peer",
            command=(),
            configured=False,
            same_data=False,
            operations=("L1", "L2"),
        ),
        Variant(
            key="sampled",
            label="the gateway keeping one trace in ten (parent-based ratio sampling)",
            command=("gateway.edge.cli", "serve"),
            env={
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            },
        ),
        Variant(
            key="stock",
            label="the gateway on Strawberry's per-field executor (no direct execution)",
            command=("bench.baseline", "--executor", "strawberry"),
        ),
    )
}
DEFAULT_VARIANTS = (
    "gateway", "floor", "nobatch", "untraced", "unaudited", "bare", "sampled", "postgraphile",
)  # fmt: skip
#: The variants of the scale table (the issue's: gateway, floor, batching off).
SCALE_VARIANTS = ("gateway", "floor", "nobatch")

#: Where the traced servers send their spans (``bench.collector``); not a server under test.
COLLECTOR = Variant(
    key="collector",
    label="OTLP/HTTP sink standing in for an OpenTelemetry collector",
    command=("bench.collector",),
    configured=False,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One running server process."""

    def __init__(
        self, variant: Variant, config: Path | None, env: dict[str, str], log_dir: Path
    ) -> None:
        self.variant = variant
        self.port = free_port()
        self.log_path = log_dir / f"{variant.key}.log"
        argv = [*variant.program] if variant.program else [sys.executable, "-m", *variant.command]
        if variant.configured:
            argv += ["--config", str(config)]
        self.argv = [*argv, "--port", str(self.port)]
        self.env = {**os.environ, **env, **variant.env}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.variant.key} is not running")
        return self.process.pid

    def start(self) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.variant.key} exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.variant.key} did not answer /healthz; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def rss_mb(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / 2**20


def cpu_seconds(pids: list[int], *, with_children: bool) -> dict[int, float]:
    """User + system CPU seconds of each process (and, if asked, of all its descendants)."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)] if with_children else [root]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            found[process.pid] = times.user + times.system
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all CPUs; not idle, not waiting on I/O)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings; a process that started in between counts from zero."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())
