"""How every server of the benchmark runs: as ``deltagate serve`` runs the gateway."""

from __future__ import annotations

from typing import Any

import uvicorn


def serve(app: Any, host: str, port: int) -> None:
    """One worker on uvloop and httptools, warnings only, no access log."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
