"""The load generator: a fixed number of keep-alive connections, each sending its next request
as soon as the previous answer has arrived (a closed loop at fixed concurrency).

It runs as a process of its own, so its CPU is not the server's, and it is
written to cost as little as a Python program can: requests are encoded once,
each connection is an ``asyncio.Protocol`` on uvloop (no coroutine, task or
HTTP library per request), and a response is read by its ``content-length``.
Its CPU per request (about 0.07 ms on the 2-core machine it was written on) is
measured and shown beside every result (the "gen CPU" column).

Protocol with the caller (``bench.runner``), on standard output: the line
``measure-start`` when the timed window opens (after the warm-up), the line
``measure-end`` when it closes, then one line of JSON with the results.

Run: ``python -m bench.loadgen --port 8000 --requests requests.json --duration 10``,
where ``requests.json`` is ``{"path", "headers", "bodies"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from typing import Any

import orjson

_CONTENT_LENGTH = b"\r\ncontent-length:"


class Run:
    """One load run: the requests, the clock, the counts."""

    def __init__(self, requests: list[bytes], concurrency: int) -> None:
        self.requests = requests
        self.next = 0
        self.concurrency = concurrency
        self.measuring = False
        self.stopping = False
        self.latencies: list[int] = []
        self.errors = 0
        self.error_sample: str | None = None
        self.response_bytes = 0
        self.completed = 0
        self.open = 0
        self.done: asyncio.Future[None] | None = None
        self.failure: BaseException | None = None

    def request(self) -> bytes:
        request = self.requests[self.next]
        self.next = (self.next + 1) % len(self.requests)
        return request

    def record(self, started: int, status: int, body: bytes) -> None:
        self.completed += 1
        if not self.measuring:
            return
        self.latencies.append(time.perf_counter_ns() - started)
        self.response_bytes += len(body)
        if status != 200 or b'"errors"' in body:
            self.errors += 1
            if self.error_sample is None:
                self.error_sample = f"HTTP {status}: {body[:500].decode(errors='replace')}"

    def closed(self, exc: BaseException | None = None) -> None:
        self.open -= 1
        if exc is not None and self.failure is None and not self.stopping:
            self.failure = exc
        if (self.open == 0 or self.failure is not None) and self.done and not self.done.done():
            self.done.set_result(None)


class Client(asyncio.Protocol):
    """One keep-alive connection sending requests back to back."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.body_at = -1
        self.ends_at = -1
        self.status = 0
        self.started = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        if self.transport is None:
            return
        if self.run.stopping:
            self.transport.close()
            return
        self.buffer.clear()
        self.body_at = self.ends_at = -1
        self.started = time.perf_counter_ns()
        self.transport.write(self.run.request())

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.body_at < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(_CONTENT_LENGTH)
            if at < 0:  # every server under test sends one; anything else is a failure
                self.run.failure = RuntimeError("a response without content-length")
                if self.transport is not None:
                    self.transport.close()
                return
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + len(_CONTENT_LENGTH) : stop if stop > 0 else len(head)])
            self.body_at = end + 4
            self.ends_at = self.body_at + length
        if len(buffer) < self.ends_at:
            return
        self.run.record(self.started, self.status, bytes(buffer[self.body_at : self.ends_at]))
        self.send()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.run.closed(exc if exc is not None or not self.run.stopping else None)


def encode(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def summary(run: Run, seconds: float, cpu: float) -> dict[str, Any]:
    latencies = sorted(run.latencies)
    count = len(latencies)

    def percentile(q: float) -> float | None:
        if not count:
            return None
        return latencies[max(0, math.ceil(q * count) - 1)] / 1e6

    return {
        "requests": count,
        "completed": run.completed,
        "errors": run.errors,
        "error_sample": run.error_sample,
        "seconds": seconds,
        "throughput": count / seconds if seconds else 0.0,
        "latency_ms": {
            "p50": percentile(0.50),
            "p90": percentile(0.90),
            "p99": percentile(0.99),
            "max": latencies[-1] / 1e6 if count else None,
            "mean": sum(latencies) / count / 1e6 if count else None,
        },
        "response_bytes": run.response_bytes / count if count else 0,
        "cpu_seconds": cpu,
    }


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def drive(
    host: str, port: int, requests: list[bytes], concurrency: int, warmup: float, duration: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    run = Run(requests, concurrency)
    run.done = loop.create_future()
    for _ in range(concurrency):
        run.open += 1
        await loop.create_connection(lambda: Client(run), host, port)
    await asyncio.sleep(warmup)
    if run.failure is not None:
        raise RuntimeError(f"a connection failed during the warm-up: {run.failure!r}")
    _say("measure-start")
    run.measuring = True
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.wait([run.done], timeout=duration)
    run.measuring = False
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _say("measure-end")
    if run.failure is not None:
        raise RuntimeError(f"a connection failed: {run.failure!r}")
    run.stopping = True
    await asyncio.wait([run.done], timeout=30)
    return summary(run, seconds, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="JSON file: path, headers, bodies")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before timing")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds timed")
    args = parser.parse_args()
    with open(args.requests, "rb") as file:
        spec = orjson.loads(file.read())
    requests = [
        encode(args.host, args.port, spec["path"], spec["headers"], body.encode())
        for body in spec["bodies"]
    ]
    import uvloop

    result = uvloop.run(
        drive(args.host, args.port, requests, args.concurrency, args.warmup, args.duration)
    )
    _say(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
