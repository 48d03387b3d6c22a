"""An embedded PostgreSQL (the ``pgserver`` package) for the demo and the tests: no system database.

pgserver, run as root, starts PostgreSQL as a separate system user and makes
every parent folder of its data directory traversable, so the data directory
belongs under the system temp folder (the default here) or in a dedicated
folder whose parents are already open.

pgserver's own stop at exit cannot be relied on: it stops the postmaster it
started, by process, so a server that was stopped and started again (an
outage test) is left running, and a killed run stays on its list of users for
ever, after which it stops nothing. ``EmbeddedServer`` stops by data folder
(``pg_ctl stop`` reads the live ``postmaster.pid``) when closed, and every
server still open when the interpreter exits is closed then.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DATA_DIR", "EmbeddedServer", "close_all", "start_embedded"]

#: Where the demo keeps its database unless told otherwise.
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "deltagate-demo-pg"

#: Seconds ``pg_ctl`` may take to start or stop the server.
PG_CTL_TIMEOUT = 60

logger = logging.getLogger("deltagate.embedded")

_open: list[EmbeddedServer] = []


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs asks for XDG_RUNTIME_DIR, which containers rarely set; harmless here.
        warnings.simplefilter("ignore", UserWarning)
        import pgserver

    return pgserver


class EmbeddedServer:
    """A PostgreSQL server in ``data_dir``, started (or reused) now, stopped by ``close``.

    Args:
        data_dir: its data folder (created and initialised if new).

    Example::

        server = EmbeddedServer(Path("/tmp/deltagate-demo-pg"))
        dsn = server.uri
        ...
        server.close()   # stopped, unless another live process still uses it
    """

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_users(data_dir)
        pgserver = _pgserver()
        # cleanup_mode=None: the stop is ours (see the module's docstring).
        self._handle = pgserver.get_server(data_dir, cleanup_mode=None)
        self.data_dir = Path(self._handle.pgdata)
        self.uri = str(self._handle.get_uri("postgres"))
        self._closed = False
        _open.append(self)

    def stop(self) -> None:
        """Stop the server now, whoever else uses it (an outage, or the last user leaving)."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        """Start the server again after ``stop``, on the same socket folder."""
        self._pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {self.data_dir}", "-l", str(self.data_dir / "log"),
             "start"]
        )  # fmt: skip

    def pid(self) -> int:
        """The postmaster's process id (it changes when the server is started again)."""
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None or not info.is_running():
            raise RuntimeError(f"no PostgreSQL is running in {self.data_dir}")
        return int(info.pid)

    def running(self) -> bool:
        """Whether a postmaster serves the data folder (its live ``postmaster.pid``)."""
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        return info is not None and info.is_running()

    def close(self) -> None:
        """Leave the server: stop it unless another live process still uses it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self in _open:
            _open.remove(self)
        # With cleanup_mode=None this only takes this process off pgserver's list of users.
        self._handle.cleanup()
        if self._other_users():
            logger.info("embedded PostgreSQL in %s kept: still in use", self.data_dir)
            return
        if self.running():
            self.stop()

    def _other_users(self) -> list[int]:
        me = os.getpid()
        return [pid for pid in _live_users(self.data_dir) if pid != me]

    def _pg_ctl(self, args: list[str]) -> None:
        _pgserver().pg_ctl(
            args, pgdata=self.data_dir, user=self._handle.system_user, timeout=PG_CTL_TIMEOUT
        )


def _live_users(data_dir: Path) -> list[int]:
    """The live processes on pgserver's list of the server's users (a dead one uses nothing)."""
    import psutil

    try:
        pids = json.loads((data_dir / ".handle_pids.json").read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]


def _forget_dead_users(data_dir: Path) -> None:
    """Drop processes that no longer exist from pgserver's list: a killed run stays on it
    for ever, and pgserver (which reuses the server while anyone is listed) would count it."""
    path = data_dir / ".handle_pids.json"
    if path.exists():
        path.write_text(json.dumps(_live_users(data_dir)))


def close_all() -> None:
    """Close every server this process started and has not closed (the exit safety net)."""
    for server in list(_open):
        try:
            server.close()
        except Exception as exc:  # one server failing to stop must not keep the others running
            logger.warning("embedded PostgreSQL in %s did not stop: %s", server.data_dir, exc)


atexit.register(close_all)


def start_embedded(data_dir: Path = DEFAULT_DATA_DIR) -> EmbeddedServer:
    """Start (or reuse) the embedded server in ``data_dir``.

    It stops when closed, or at the latest when this process exits.
    """
    return EmbeddedServer(data_dir)
