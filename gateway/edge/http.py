"""GraphQL over HTTP: which media type to answer with, and reading a request's operation.

deltagate follows the GraphQL over HTTP specification (Stage 2 draft, with its
legacy watershed of 1 January 2025 passed): operations come as ``POST`` with
an ``application/json`` body; the response is ``application/graphql-response+json``
when the client accepts it or sends no ``Accept`` at all, ``application/json``
when the client asks for that (or accepts anything, ``*/*``, as older clients
and ``curl`` do), and ``406`` when it accepts neither.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from gateway.core.errors import InvalidInput, RequestTimeout, RequestTooLarge
from gateway.core.text import check_variables
from gateway.edge.responses import GRAPHQL_RESPONSE, JSON


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> Mapping[str, str]:
    """A request's headers (an ASGI scope's ``headers``), read once: lower-cased names, values
    as latin-1 text, as Starlette's ``Headers`` decodes them.

    A name sent more than once keeps its first value, as ``Headers.get`` does: every
    reader (the token, the delegation, the matter, ``traceparent``, ``Accept``, the body's
    type and length) sees the one value it saw before, so a second ``Authorization`` or
    ``traceparent`` is ignored rather than checked in one place and used in another.
    Names are lower-cased here too (ASGI servers already send them so), and a mixed-case
    duplicate is the same name.
    """
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


# A client sends the same ``Accept`` with every request, and few distinct ones are sent: the
# answer is kept, for a bounded number of them (any caller can send any header).
@functools.lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header; None if neither is acceptable."""
    if accept is None or not accept.strip():
        return GRAPHQL_RESPONSE
    best: tuple[float, int, int] | None = None
    chosen = None
    for media_type in (GRAPHQL_RESPONSE, JSON):
        quality, specificity = _quality(accept, media_type)
        if quality <= 0:
            continue
        # Named outright, the modern type wins a tie; matched by a wildcard, the legacy one does.
        preferred = (media_type == GRAPHQL_RESPONSE) == (specificity == 2)
        rank = (quality, specificity, int(preferred))
        if best is None or rank > best:
            best, chosen = rank, media_type
    return chosen


def _quality(accept: str, media_type: str) -> tuple[float, int]:
    """The q-value ``accept`` gives ``media_type`` and how specific the matching range is."""
    major = media_type.split("/")[0]
    found = (0.0, -1)
    for item in accept.split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        kind = kind.lower()
        specificity = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(kind)
        if specificity is None or specificity < found[1]:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        found = (quality, specificity)
    return found if found[1] >= 0 else (0.0, -1)


@dataclass(frozen=True, slots=True)
class OperationRequest:
    """The parameters of a GraphQL-over-HTTP request.

    ``query`` is None only when the client sends the document's hash instead
    (``extensions.persistedQuery.sha256Hash``), for a gateway that keeps a
    manifest of registered operations.
    """

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None

    @property
    def persisted_hash(self) -> str | None:
        persisted = (self.extensions or {}).get("persistedQuery")
        if isinstance(persisted, dict) and isinstance(sha := persisted.get("sha256Hash"), str):
            return sha.lower()
        return None


async def read_operation(
    headers: Mapping[str, str],
    receive: Receive,
    max_body_bytes: int,
    body_seconds: float | None = None,
) -> OperationRequest:
    """The operation of a ``POST``, or ``InvalidInput`` saying what is wrong with the request.

    The body is read in chunks and refused (HTTP 413) as soon as it passes
    ``max_body_bytes``, whatever ``Content-Length`` claims, and refused (HTTP 408)
    if it has not all arrived ``body_seconds`` after the headers: a client
    trickling a byte at a time would otherwise hold a connection and a worker's
    attention for as long as it likes.
    """
    header = headers.get("content-type", "")
    if header != JSON:  # what nearly every client sends needs no parsing
        _check_content_type(header)
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise _too_large(max_body_bytes)
    body = bytearray()
    # The ASGI messages read here, as ``Request.stream`` reads them, without an async
    # generator to make and close for a body that nearly always comes in one message.
    try:
        async with asyncio.timeout(body_seconds):
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                body += message.get("body", b"")
                if len(body) > max_body_bytes:
                    raise _too_large(max_body_bytes)
                more = message.get("more_body", False)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {body_seconds:g} seconds",
            limit="bodySeconds",
            maximum=body_seconds,
        ) from None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the request body must be a JSON object")
    query = payload.get("query")
    variables = payload.get("variables")
    operation_name = payload.get("operationName") or None
    extensions = payload.get("extensions")
    if variables is not None and not isinstance(variables, dict):
        raise InvalidInput("'variables' must be an object")
    check_variables(variables)
    if operation_name is not None and not isinstance(operation_name, str):
        raise InvalidInput("'operationName' must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise InvalidInput("'extensions' must be an object")
    operation = OperationRequest(query, variables, operation_name, extensions)
    if query is None and operation.persisted_hash is not None:
        return operation
    if not isinstance(query, str) or not query or query.isspace():
        raise InvalidInput("'query' must be a non-empty string")
    return operation


def _check_content_type(header: str) -> None:
    """Refuse a body that is not ``application/json`` in UTF-8."""
    content_type, *params = (part.strip().lower() for part in header.split(";"))
    if content_type != JSON:
        raise InvalidInput("the request body must be application/json")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise InvalidInput("the request body must be encoded in UTF-8")


def _too_large(max_body_bytes: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"the request body exceeds {max_body_bytes} bytes",
        limit="bodyBytes",
        maximum=max_body_bytes,
    )
