"""What a shared quota costs a request: the Redis round trip against the in-process bucket.

    python bench/rate_limit_store.py [--calls 5000] [--rounds 5]

Starts a ``redis-server`` of its own on a free loopback port (no persistence,
a temporary folder; stopped at the end), then times, in this process, one
request's rate-limit decision ``--calls`` times in a row:

- in process: ``RateLimiter.take`` (today's per-process buckets);
- shared: ``SharedRateLimiter.admit``, one ``EVALSHA`` of the token-bucket
  script over one loopback connection;
- fall-back: the same limiter with the store stopped (each request decided
  in the process, the store asked again once a second).

Reported: the median over ``--rounds`` rounds of wall-clock and CPU
microseconds per call (CPU: this process only; Redis's work is in its own).
The quota is large enough that every call is admitted. Loopback understates a
network hop: in a cluster, add the round trip to the Redis pod.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

from gateway.edge.rate_limit_store import RedisBuckets
from gateway.edge.rate_limits import Quota, Quotas, RateLimiter
from gateway.edge.shared_limits import SharedRateLimiter

QUOTAS = Quotas(Quota(rate=1e9, burst=1_000_000_000))


async def timed(call: Callable[[], Awaitable[None]], calls: int) -> tuple[float, float]:
    """Microseconds of wall clock and of CPU per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await call()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


async def measure(url: str, server: subprocess.Popen[bytes], calls: int, rounds: int) -> None:
    local = RateLimiter(QUOTAS)
    shared = SharedRateLimiter(RedisBuckets(url), lambda: QUOTAS)
    await shared.admit("warm-up")  # loads the script, opens the connection
    results: dict[str, list[tuple[float, float]]] = {"in process": [], "shared (Redis)": []}
    for _ in range(rounds):
        results["in process"].append(await timed(lambda: local.admit("bench"), calls))
        results["shared (Redis)"].append(await timed(lambda: shared.admit("bench"), calls))
    server.terminate()
    server.wait(timeout=10)
    results["fall-back (store down)"] = [
        await timed(lambda: shared.admit("bench"), calls) for _ in range(rounds)
    ]
    await shared.close()
    print(f"{calls} calls x {rounds} rounds; median µs per call")
    print(f"{'':24} {'wall':>8} {'cpu':>8}")
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"{name:24} {wall:8.1f} {cpu:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (sh tools/ensure-redis.sh, as root)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="deltagate-bench-redis-") as folder:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder, "--logfile", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            asyncio.run(measure(f"redis://127.0.0.1:{port}/0", server, args.calls, args.rounds))
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
