"""Take the README's screenshot of GraphiQL, ``docs/graphiql.png`` (``make screenshots``).

    .venv/bin/python tools/screenshots.py

Runs the GraphiQL browser test (headless Debian chromium over a seeded embedded PostgreSQL,
nothing reachable but the gateway) with ``DELTAGATE_SCREENSHOTS`` set, so what is committed
is what the test saw. Chinese names need a CJK font on the machine (Debian's
``fonts-wqy-zenhei``; ``make screenshots`` installs it as root).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/gateway/edge/test_graphiql_browser.py"


def main() -> int:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    env = dict(os.environ, DELTAGATE_SCREENSHOTS=str(docs))
    # Its own PostgreSQL folder, so it never meets a test run's server.
    env.setdefault("DELTAGATE_TEST_PGDATA", str(Path(tempfile.gettempdir()) / "deltagate-shots-pg"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", TEST], cwd=ROOT, env=env)
    if done.returncode == 0:
        print(f"wrote {(docs / 'graphiql.png').relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
