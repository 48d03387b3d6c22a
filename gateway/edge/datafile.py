"""A data file the gateway reads at start and again whenever it changes, without a restart.

The operations manifest and the quotas are edited while the gateway runs. The
file's size and modification time are compared at most every ``interval``
seconds, on use; a changed file is loaded anew. A file that fails to load
leaves the previous content in force (logged, and shown in ``error``), the
way a broken policy file does; at start, it is a ``ConfigError``.
"""

from __future__ import annotations

import logging
import os
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from gateway.core.errors import ConfigError

T = TypeVar("T")

logger = logging.getLogger("deltagate")


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's content; ``ConfigError`` names the file and what is wrong with it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


class WatchedFile(Generic[T]):
    """The content of ``path`` as ``load`` reads it, kept current.

    Args:
        path: the file.
        load: reads the file; raises ``ConfigError`` (or any error) for a bad one.
        interval: seconds between checks of the file; 0 checks on every use.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        *,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval = interval
        self.error: str | None = None
        self._load = load
        self._clock = clock
        self._signature = _signature(path)
        try:
            self._value = load(path)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{path}: {exc}") from None
        self._checked_at = clock()

    @property
    def value(self) -> T:
        """The content in force, reloaded first if the file changed."""
        if self._clock() - self._checked_at >= self.interval:
            self._reload()
        return self._value

    def _reload(self) -> None:
        self._checked_at = self._clock()
        signature = _signature(self.path)
        if signature == self._signature:
            return
        self._signature = signature
        try:
            value = self._load(self.path)
        except Exception as exc:  # keep what is in force; never fall open or crash a request
            self.error = str(exc)
            logger.error("%s cannot be reloaded; the previous version stays in force: %s",
                         self.path, exc)  # fmt: skip
            return
        self._value = value
        self.error = None
        logger.info("%s reloaded", self.path)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)
