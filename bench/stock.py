"""The gateway with every operation on Strawberry's per-field executor (an optional variant).

Everything else is the gateway as ``deltagate serve`` builds it from the same
configuration; only ``build_schema(direct=False)`` replaces the schema, so
the difference to the ``gateway`` variant is what direct execution of planned
operations (``schema.direct``) buys.

Run: ``python -m bench.stock --config gateway.toml --port 8002``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    import uvicorn

    from gateway.app import Gateway, create_app
    from gateway.settings import load_settings
    from schema import build_schema

    parser = argparse.ArgumentParser(prog="python -m bench.stock", description=__doc__)
    parser.add_argument("--config", type=Path, help="the gateway's configuration file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    gateway = Gateway.from_settings(load_settings(args.config))
    gateway.schema = build_schema(direct=False)
    uvicorn.run(
        create_app(gateway),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
