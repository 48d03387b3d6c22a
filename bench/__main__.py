"""``python -m bench``: the benchmark of issue 6 (see bench/README.md)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bench.runner import Options, run
from bench.servers import VARIANTS
from bench.workload import OPERATIONS

QUICK = {
    "persons": 10_000,
    "warmup": 1.0,
    "duration": 3.0,
    "scale_sizes": (10, 50, 100),
    "scale_duration": 2.0,
    "check_samples": 5,
    "profile_seconds": 5.0,
    "soak_requests": 0,
}


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in _csv(text))


def _env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def main(argv: list[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the gateway against the hand-written floor (bench/README.md).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 10,000 persons, 3 s cells, a shorter scale table "
        "(explicit options still win)",
    )
    parser.add_argument("--persons", type=int, help=f"persons per region ({defaults.persons:,})")
    parser.add_argument("--seed", type=int, help=f"dataset seed ({defaults.seed})")
    parser.add_argument(
        "--data-dir", type=Path, help="PostgreSQL data (a folder per size in the temp folder)"
    )
    parser.add_argument("--reseed", action="store_true", help="seed again even if unchanged")
    parser.add_argument("--concurrency", type=int, help=f"connections ({defaults.concurrency})")
    parser.add_argument("--warmup", type=float, help=f"seconds before a cell ({defaults.warmup})")
    parser.add_argument("--duration", type=float, help=f"seconds per cell ({defaults.duration})")
    parser.add_argument("--rounds", type=int, help="repeat the main table; medians are reported")
    parser.add_argument("--operations", type=_csv, help=f"of {','.join(OPERATIONS)} (all)")
    parser.add_argument(
        "--variants", type=_csv, help=f"of {','.join(VARIANTS)} ({','.join(defaults.variants)})"
    )
    parser.add_argument(
        "--scale-sizes",
        type=_sizes,
        help="Q2 list lengths of the scale table, '' for none "
        f"({','.join(map(str, defaults.scale_sizes))})",
    )
    parser.add_argument(
        "--scale-duration", type=float, help=f"seconds per scale cell ({defaults.scale_duration})"
    )
    parser.add_argument(
        "--soak-requests",
        type=int,
        help="then load the gateway until it served this many requests more, recording its memory",
    )
    parser.add_argument(
        "--mode",
        choices=("production", "development"),
        help="gateway mode (production: RS256 tokens, as deployed)",
    )
    parser.add_argument(
        "--gateway-env",
        type=_env,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every server (repeatable)",
    )
    parser.add_argument("--check-samples", type=int, help="requests compared per operation")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy on the gateway and the floor under each operation (needs py-spy)",
    )
    parser.add_argument("--profile-seconds", type=float, help="seconds recorded per operation")
    parser.add_argument(
        "--profile-variants",
        type=_csv,
        help="the variants py-spy records (default gateway,floor)",
    )
    parser.add_argument("--output", type=Path, help=f"JSON results ({defaults.output})")
    args = parser.parse_args(argv)

    changes = dict(QUICK) if args.quick else {}
    for name in (
        "persons",
        "seed",
        "data_dir",
        "concurrency",
        "warmup",
        "duration",
        "rounds",
        "operations",
        "variants",
        "scale_sizes",
        "scale_duration",
        "soak_requests",
        "mode",
        "check_samples",
        "profile_seconds",
        "profile_variants",
        "output",
    ):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    changes["reseed"] = args.reseed
    changes["profile"] = args.profile
    changes["gateway_env"] = dict(args.gateway_env)
    options = dataclasses.replace(defaults, **changes)
    unknown = [v for v in options.variants if v not in VARIANTS]
    unknown += [o for o in options.operations if o not in OPERATIONS]
    if unknown:
        parser.error(f"unknown variant or operation: {', '.join(unknown)}")
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
