"""The embedded PostgreSQL stops when the process that started it exits: no server is left
running after a demo, a benchmark or a test run, whatever happened to it meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import embedded_data_dir

# The process starts the server the way the demo does, then does something to it, then exits.
STARTER = """
import sys, warnings
from pathlib import Path
from gateway.edge.embedded import start_embedded
data = Path(sys.argv[1])
start_embedded(data)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    import pgserver
user = "pgserver" if __import__("os").geteuid() == 0 else None
"""

# An outage, as the outage tests make one: the server stopped and started again by pg_ctl.
RESTART = """
pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data, user=user, timeout=30)
pgserver.pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {data}", "-l", str(data / "log"), "start"],
                pgdata=data, user=user, timeout=30)
"""


def _postmaster(data: Path) -> psutil.Process | None:
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        process = psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return None
    return process if process.is_running() and process.status() != "zombie" else None


@pytest.fixture
def data_dir() -> Iterator[Path]:
    if os.environ.get("DELTAGATE_TEST_DSN"):
        pytest.skip("starts embedded servers of its own")
    data = embedded_data_dir("-exit")
    yield data
    left = _postmaster(data)
    if left is not None:  # the test failed: do not leave its server behind either
        left.terminate()
        left.wait(30)


def _run(data: Path, script: str) -> None:
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(STARTER) + textwrap.dedent(script), str(data)],
        check=True,
        timeout=120,
    )


@pytest.mark.slow
def test_a_server_restarted_during_the_run_is_stopped_when_the_process_exits(
    data_dir: Path,
) -> None:
    _run(data_dir, RESTART)
    assert _postmaster(data_dir) is None


@pytest.mark.slow
def test_a_killed_earlier_run_does_not_keep_the_server_running_after_exit(
    data_dir: Path,
) -> None:
    _run(data_dir, "")  # makes the data folder
    # A run killed with SIGKILL stays on pgserver's list of the server's users.
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    (data_dir / ".handle_pids.json").write_text(json.dumps([killed.pid]))
    _run(data_dir, "")
    assert _postmaster(data_dir) is None


@pytest.mark.slow
def test_a_demo_stopped_with_sigterm_stops_its_server(data_dir: Path) -> None:
    # As a service manager or a container runtime stops it: uvicorn shuts down on SIGTERM
    # and raises it again, which used to end the process before the server was stopped.
    import signal
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with subprocess.Popen(
        [sys.executable, "-m", "gateway.edge.cli", "demo", "--persons", "20",
         "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as demo:  # fmt: skip
        seen = []
        try:
            assert demo.stdout is not None
            for line in demo.stdout:  # until it serves
                seen.append(line)
                if "Uvicorn running" in line:
                    break
            assert _postmaster(data_dir) is not None, "".join(seen)
            demo.send_signal(signal.SIGTERM)
            demo.wait(60)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait(30)
    assert _postmaster(data_dir) is None
