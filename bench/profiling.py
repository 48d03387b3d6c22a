"""What a server spends its CPU on under each operation: py-spy on the running process.

py-spy samples the server process from outside (no change to the code under
test) while the load generator drives it, and writes collapsed stacks. The
summary has three views of the same samples:

- by layer: each sample's innermost Python frame, grouped by package (time in
  C code, orjson or asyncpg's protocol, counts for the Python frame that
  called it);
- by stage: a sample counts for a stage if any frame of its stack belongs to
  it (GraphQL parse/validate, execution, policy, JSON, auth, SQL), so stages
  may overlap and do not sum to 100%;
- the top functions by own time.

Install py-spy first (``make bench-profile`` does, into the project's .venv).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.runner import Options, Rig
    from bench.servers import Server

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: Innermost-frame file prefixes, in order: the first match names the layer.
LAYERS = (
    ("graphql/", "graphql-core"),
    ("strawberry/", "strawberry"),
    ("schema/", "deltagate schema (types, plan, direct executor)"),
    ("resolvers/", "deltagate resolvers and loaders"),
    ("policies/", "deltagate policy"),
    ("gateway/sources/", "deltagate sources (asyncpg calls)"),
    ("gateway/edge/responses.py", "deltagate JSON response (orjson)"),
    ("gateway/audit/", "deltagate audit log"),
    ("gateway/telemetry/spans.py", "deltagate tracing"),
    ("gateway/edge/auth.py", "deltagate auth"),
    ("gateway/", "deltagate app and rest"),
    ("bench/", "floor"),
    ("casbin/", "casbin"),
    ("aiodataloader", "aiodataloader"),
    ("asyncpg/", "asyncpg"),
    ("jwt/", "PyJWT"),
    ("cryptography/", "cryptography"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn"),
    ("asyncio/", "asyncio"),
    ("opentelemetry/exporter/", "opentelemetry OTLP exporter (encoding spans)"),
    ("opentelemetry/sdk/", "opentelemetry SDK (spans)"),
    ("opentelemetry/", "opentelemetry API"),
    ("google/protobuf/", "protobuf"),
    ("requests/", "requests + urllib3 (span export)"),
    ("urllib3/", "requests + urllib3 (span export)"),
)

#: Stages: a sample counts for a stage if any frame's (file, function) matches.
STAGES: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("token check (PyJWT, RSA)", lambda f, fn: f == "gateway/edge/auth.py"),
    ("request body and JSON parse", lambda f, fn: fn == "_read_operation"),
    ("policy begin (matter, roles)", lambda f, fn: fn == "PolicyEngine.begin"),
    ("GraphQL parse + validate (cached)",
     lambda f, fn: f.startswith(("strawberry/extensions/", "graphql/language/",
                                 "graphql/validation/"))),
    ("direct executor (schema/direct.py)", lambda f, fn: f == "schema/direct.py"),
    ("Strawberry resolvers and types (schema/query.py, types.py)",
     lambda f, fn: f in ("schema/query.py", "schema/types.py")),
    ("loaders (resolvers/loaders.py)", lambda f, fn: f == "resolvers/loaders.py"),
    ("source fetch (gateway/sources/)", lambda f, fn: f.startswith("gateway/sources/")),
    ("asyncpg (pool, protocol, rows)", lambda f, fn: f.startswith("asyncpg/")),
    ("policy decide + mask (policies/operation.py)",
     lambda f, fn: f == "policies/operation.py" and fn != "OperationPolicy.summary"),
    ("policy summary for extensions", lambda f, fn: fn == "OperationPolicy.summary"),
    ("tracing: spans opened and ended (SDK, gateway/telemetry/spans.py)",
     lambda f, fn: f.startswith("opentelemetry/sdk/trace/") or f == "gateway/telemetry/spans.py"),
    ("tracing: span export (OTLP encoding, HTTP; a thread of its own)",
     lambda f, fn: f.startswith(("opentelemetry/exporter/", "requests/", "urllib3/"))
     or fn.startswith("BatchSpanProcessor") or fn.startswith("BatchProcessor")),
    ("audit log (event, hash chain, group commit)", lambda f, fn: f.startswith("gateway/audit/")
     or fn == "Gateway._audit"),
    ("response JSON (orjson)", lambda f, fn: f == "gateway/edge/responses.py" or fn == "_json"),
    ("floor operations (bench/floor.py)",
     lambda f, fn: f == "bench/floor.py" and fn not in ("create_app.<locals>.graphql", "_json")),
    ("asyncio task machinery (gather, tasks, timeouts)",
     lambda f, fn: f.startswith("asyncio/") and fn != "Runner.run"),
)  # fmt: skip


_ROOT = f"{Path(__file__).resolve().parent.parent}/"

#: Samples with none of the project's frames: HTTP parsing, the event loop, asyncpg's
#: protocol callbacks (C code shows as the Python frame that called it).
PLUMBING = "no gateway or floor frame (uvicorn, event loop, asyncpg protocol)"
_OWN_CODE = ("gateway/", "schema/", "resolvers/", "policies/", "bench/")


def available() -> str | None:
    """The py-spy executable, if installed (beside this Python, or on PATH)."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile_server(
    server: Server,
    config: RunConfig,
    bodies: dict[str, list[bytes]],
    options: Options,
    rig: Rig,
    work: Path,
    operations: Iterable[str] = ("Q1", "Q2", "Q3"),
) -> dict[str, Any]:
    """Record ``server`` under each operation; the summary per operation."""
    from bench.runner import _requests_file, measure, say
    from bench.workload import OPERATIONS

    spy = available()
    if spy is None:
        say("Profile: py-spy is not installed (make bench-profile installs it); skipped")
        return {"skipped": "py-spy is not installed"}
    found = {}
    for key in operations:
        if key not in bodies:
            continue
        op = OPERATIONS[key]
        requests = _requests_file(work, key, config, op, bodies[key])
        raw = work / f"profile-{server.variant.key}-{key}.txt"
        say(f"Profile: py-spy on {server.variant.key} under {key} ...")

        def during(raw: Path = raw) -> Callable[[], None]:
            recorder = subprocess.Popen(
                [spy, "record", "--pid", str(server.pid), "--duration",
                 str(int(options.profile_seconds)), "--rate", "250", "--format", "raw",
                 "--nonblocking", "--full-filenames", "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            return lambda: recorder.wait(30)

        cell = measure(server, requests, options, rig, options.profile_seconds + 1, during=during)
        summary = summarise(raw.read_text(encoding="utf-8").splitlines())
        summary["throughput_while_profiled"] = cell["throughput"]
        summary["raw"] = str(raw)
        found[key] = summary
    return found


def summarise(lines: Iterable[str], top: int = 20) -> dict[str, Any]:
    """Layers, stages and top functions of py-spy's collapsed stacks."""
    total = 0
    layers: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse(frame) for frame in stack.split(";")]
        total += count
        leaf_function, leaf_file = frames[-1]
        layers[_layer(leaf_file)] += count
        own[f"{leaf_function} ({_short(leaf_file)})"] += count
        shorts = [(function, _short(file)) for function, file in frames]
        for name, match in STAGES:
            if any(match(file, function) for function, file in shorts):
                stages[name] += count
        if not any(file.startswith(_OWN_CODE) for _, file in shorts):
            stages[PLUMBING] += count
    share = (lambda n: n / total) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "layers": [(name, share(n)) for name, n in layers.most_common()],
        "stages": [
            (name, share(n)) for name in (*(n for n, _ in STAGES), PLUMBING) if (n := stages[name])
        ],
        "top_functions": [(name, share(n)) for name, n in own.most_common(top)],
    }


def render(profiles: dict[str, Any]) -> str:
    """Text for ``{variant: {operation: summary}}``."""
    out = []
    for variant, profile in profiles.items():
        if "skipped" in profile:
            out.append(f"Profile of {variant}: skipped ({profile['skipped']})")
            continue
        out += _render_one(variant, profile)
    return "\n".join(out).rstrip()


def _render_one(variant: str, profile: dict[str, Any]) -> list[str]:
    out = []
    for key, summary in profile.items():
        out.append(
            f"Profile of {variant} under {key} ({summary['samples']} samples, "
            f"{summary['throughput_while_profiled']:,.0f} req/s while sampled)"
        )
        out.append("  by layer (innermost Python frame):")
        out += [f"    {share * 100:5.1f}%  {name}" for name, share in summary["layers"][:12]]
        out.append("  by stage (any frame; stages overlap):")
        out += [f"    {share * 100:5.1f}%  {name}" for name, share in summary["stages"]]
        out.append("  top functions by own time:")
        out += [f"    {share * 100:5.1f}%  {name}" for name, share in summary["top_functions"][:12]]
        out.append("")
    return out


def _parse(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, ""
    return match["function"], match["file"]


def _short(file: str) -> str:
    """``.../site-packages/graphql/execution/execute.py`` → ``graphql/execution/execute.py``."""
    if file.startswith(_ROOT):
        return file[len(_ROOT) :]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "/lib/python3":
                file = file.split("/", 1)[1] if "/" in file else file
    return file.lstrip("/")


def _layer(file: str) -> str:
    short = _short(file)
    for prefix, name in LAYERS:
        if short.startswith(prefix):
            return name
    return short.split("/", 1)[0] or "other"


if __name__ == "__main__":
    # python -m bench.profiling NAME RAW_FILE: summarise a recording made by hand.
    summary = summarise(Path(sys.argv[2]).read_text(encoding="utf-8").splitlines())
    print(render({"(by hand)": {sys.argv[1]: {**summary, "throughput_while_profiled": 0.0}}}))
