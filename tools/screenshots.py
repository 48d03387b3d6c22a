"""Take the README's screenshots (``make screenshots``): GraphiQL, ``docs/graphiql.png``, and
the auditor console's event list and event detail in English and Chinese,
``docs/console-{events,detail}-{en,zh}.png``.

    .venv/bin/python tools/screenshots.py

Runs the browser tests that take them (headless Debian chromium over a seeded embedded
PostgreSQL, nothing reachable but the gateway) with ``DELTAGATE_SCREENSHOTS`` set, so what is
committed is what the tests saw. Chinese needs a CJK font on the machine (Debian's
``fonts-wqy-zenhei``; ``make screenshots`` installs it as root).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = [
    "tests/gateway/edge/test_graphiql_browser.py",
    "tests/gateway/edge/test_console_browser.py::"
    "test_an_auditor_goes_from_a_subject_to_the_request_its_decisions_and_its_waterfall",
]
SHOTS = [
    "graphiql.png",
    *(f"console-{view}-{lang}.png" for view in ("events", "detail") for lang in ("en", "zh")),
]


def main() -> int:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    env = dict(os.environ, DELTAGATE_SCREENSHOTS=str(docs))
    # Its own PostgreSQL folder, so it never meets a test run's server.
    env.setdefault("DELTAGATE_TEST_PGDATA", str(Path(tempfile.gettempdir()) / "deltagate-shots-pg"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *TESTS], cwd=ROOT, env=env)
    if done.returncode == 0:
        for name in SHOTS:
            print(f"wrote {(docs / name).relative_to(ROOT)}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
