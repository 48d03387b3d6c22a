"""An embedded PostgreSQL (the ``pgserver`` package) for the demo: no system database needed.

pgserver, run as root, starts PostgreSQL as a separate system user and makes
every parent folder of its data directory traversable, so the data directory
belongs under the system temp folder (the default here) or in a dedicated
folder whose parents are already open.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

#: Where the demo keeps its database unless told otherwise.
DEFAULT_DATA_DIR = Path(tempfile.gettempdir()) / "deltagate-demo-pg"


def start_embedded(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """Start (or reuse) the embedded server in ``data_dir``; the DSN of its ``postgres`` database.

    The server stops when this process exits.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs asks for XDG_RUNTIME_DIR, which containers rarely set; harmless here.
        warnings.simplefilter("ignore", UserWarning)
        import pgserver

        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return str(server.get_uri("postgres"))
