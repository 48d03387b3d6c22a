"""Slow bodies and unauthenticated clients cannot hold connections: a real server on 127.0.0.1.

A client that trickles its body a byte at a time gets 408 with a JSON GraphQL
error once ``body_timeout`` has passed, and the connection is closed; one
client address may have only ``max_unauthenticated_per_client`` requests
waiting to be admitted at once; a request refused before its body is read
(401, 429) closes its connection instead of waiting for a body nobody reads.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import pytest
import uvicorn

from gateway.core.errors import RateLimited
from gateway.edge.admission import Admission
from gateway.edge.app import Gateway, create_app
from gateway.edge.query_limits import Limits
from tests.conftest import Seeded, gateway_settings, token

PORTAL = token("AH", "public_portal", app="portal-ah")
BODY = orjson.dumps({"query": "{ __typename }"})


@pytest.fixture
async def server(seeded: Seeded) -> AsyncIterator[int]:
    """A gateway served by uvicorn (httptools) on 127.0.0.1: body_timeout 1 s, 2 waiting."""
    settings = gateway_settings(seeded.dsn, rate_limits=False)
    limits = replace(Limits(), body_timeout=1, max_unauthenticated_per_client=2)
    gateway = Gateway.from_settings(replace(settings, limits=limits))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(gateway),
        http="httptools",
        loop="asyncio",
        log_level="warning",
        timeout_graceful_shutdown=1,  # a test that failed leaves no connection to wait for
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve(sockets=[sock]))
    for _ in range(500):  # uvicorn offers no event for it
        if served.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        served.should_exit = True
        await task
        sock.close()


async def send_headers(
    port: int, bearer: str | None, length: int = len(BODY)
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {bearer}\r\n" if bearer else ""
    writer.write(
        (
            f"POST /graphql HTTP/1.1\r\nHost: deltagate\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{auth}\r\n"
        ).encode()
    )
    await writer.drain()
    return reader, writer


async def trickle(writer: asyncio.StreamWriter, stop: asyncio.Event, seconds: float = 0.7) -> None:
    """Send the body a byte every 0.2 s, until the server stops reading or ``stop`` is set.

    Only for ``seconds`` (less than the body deadline), so that the server has read every
    byte sent when it gives up: closing with bytes unread would make the kernel answer with
    a reset, which may drop the response before the client reads it.
    """
    until = time.monotonic() + seconds
    for byte in BODY:
        if stop.is_set() or writer.is_closing() or time.monotonic() > until:
            return
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.2)


async def response_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response; then the server must close the connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
    # Closed by the server: an end of file, or a reset when the server closed with bytes of
    # the trickled body still unread (TCP answers those with RST).
    try:
        rest = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        rest = b""
    assert rest == b""
    return int(status_line.split()[1]), headers, body


async def test_a_trickled_body_gets_408_as_json_and_its_connection_is_released(
    server: int,
) -> None:
    reader, writer = await send_headers(server, PORTAL)
    stop = asyncio.Event()
    sending = asyncio.create_task(trickle(writer, stop))
    started = time.monotonic()
    status, headers, body = await response_of(reader)
    elapsed = time.monotonic() - started
    stop.set()
    await sending
    writer.close()
    assert status == 408
    assert headers["content-type"].startswith("application/graphql-response+json")
    [error] = orjson.loads(body)["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST", "limit": "bodySeconds", "maximum": 1}
    assert 0.9 <= elapsed < 3


async def test_one_client_may_hold_only_so_many_requests_before_they_are_admitted(
    server: int,
) -> None:
    stop = asyncio.Event()
    slow = [await send_headers(server, PORTAL) for _ in range(2)]
    sending = [asyncio.create_task(trickle(writer, stop)) for _, writer in slow]
    await asyncio.sleep(0.3)  # both are being read
    reader, writer = await send_headers(server, PORTAL)
    started = time.monotonic()
    status, headers, body = await response_of(reader)  # closed too: its body is never read
    assert time.monotonic() - started < 1.5  # refused at once, not after the body deadline
    writer.close()
    assert status == 429
    assert headers["connection"] == "close"
    [error] = orjson.loads(body)["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["limit"] == "unauthenticatedPerClient"
    for slow_reader, _ in slow:  # the two slow ones time out, and their places are freed
        assert (await response_of(slow_reader))[0] == 408
    stop.set()
    await asyncio.gather(*sending)
    for _, slow_writer in slow:
        slow_writer.close()
    reader, writer = await send_headers(server, PORTAL)
    writer.write(BODY)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200")


async def test_an_unauthenticated_request_is_refused_without_keeping_its_connection(
    server: int,
) -> None:
    reader, writer = await send_headers(server, None, length=10_000)
    status, headers, _ = await response_of(reader)  # no body sent: closed all the same
    writer.close()
    assert status == 401
    assert headers["connection"] == "close"


def test_a_place_is_given_back_however_its_block_ends() -> None:
    admission = Admission(2)
    with admission.pending("203.0.113.7"), admission.pending("203.0.113.7"):
        with pytest.raises(RateLimited), admission.pending("203.0.113.7"):
            pass
        with admission.pending("198.51.100.1"):  # another address has places of its own
            pass
    with pytest.raises(ValueError, match="a failed token check"), admission.pending("203.0.113.7"):
        raise ValueError("a failed token check")
    with admission.pending("203.0.113.7"), admission.pending("203.0.113.7"):
        pass  # both places back
    assert admission._pending == {}
