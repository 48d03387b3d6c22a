"""Errors as the gateway shows them: the one place an exception becomes a JSON entry and a status.

Every error entry of every response is written here, whether it refuses a
request before anything runs (``request_error``) or sits beside the data of
an operation that ran (``operation_errors``, ``SOURCE_UNAVAILABLE`` included):
the gateway's own errors (``gateway.core.errors``) show their message, their
class's ``extensions.code`` and their extensions; GraphQL syntax, validation
and coercion errors are ``BAD_REQUEST``; anything else is ``INTERNAL`` with a
fixed message, its detail logged here with the trace id.

Responses of ``POST /graphql`` are ``Answer``s, sent as ASGI messages as they are;
the other routes take them as Starlette responses (``Answer.response``).

``REFUSALS`` gives each error class its HTTP status when it refuses a whole
request, as ``application/graphql-response+json`` and as ``application/json``.
An operation that ran is 200 whatever its field errors. README's status table
is this table (a test compares them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.responses import Response
from starlette.types import Send

from gateway.core.errors import (
    AuditUnavailable,
    BatchTooLarge,
    ConfigError,
    Forbidden,
    GatewayError,
    InvalidDocument,
    InvalidId,
    InvalidInput,
    LimitExceeded,
    MethodNotAllowed,
    NotAcceptable,
    PolicyError,
    QueryTooDeep,
    RateLimited,
    RequestTimeout,
    RequestTooLarge,
    SourceError,
    SourceUnavailable,
    Unauthenticated,
)
from gateway.edge.schema_names import hide_schema_names

#: Unexpected errors go to this logger, each with its trace id and traceback.
logger = logging.getLogger("deltagate.errors")

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"

#: A path in the response: field names and list indexes from the root.
ResponsePath = Sequence[str | int]


@dataclass(frozen=True, slots=True)
class Refusal:
    """How a request refused with one error class is answered.

    Attributes:
        status: the HTTP status as ``application/graphql-response+json``.
        json_status: the HTTP status as ``application/json``.
        what: what happened, as the README's status table says it.
    """

    status: int
    json_status: int
    what: str

    def status_for(self, media_type: str) -> int:
        """The HTTP status for a response of ``media_type``."""
        return self.status if media_type == GRAPHQL_RESPONSE else self.json_status


_INTERNAL = Refusal(
    500, 500, "an unexpected failure (`INTERNAL`, no detail; the log has it with the trace id)"
)
_LIMIT = Refusal(
    400, 400, "over a query limit: `QUERY_TOO_DEEP`, `QUERY_TOO_COMPLEX`, `BATCH_TOO_LARGE`"
)

#: Every class of the error tree, with its own entry (none inherits its parent's). Limit
#: refusals are 400 with either media type: the GraphQL over HTTP specification allows a
#: 4xx for ``application/json``, and a refusal the operator configured should show as a
#: client error on every proxy and dashboard. GraphQL request errors proper (a document that
#: does not parse or validate) follow the specification: 200 as ``application/json``.
REFUSALS: Mapping[type[GatewayError], Refusal] = {
    GatewayError: _INTERNAL,
    ConfigError: _INTERNAL,
    SourceError: _INTERNAL,
    InvalidDocument: Refusal(
        400,
        200,
        "document does not parse or validate, operation not found, variables do not coerce"
        " (no `data` key)",
    ),
    LimitExceeded: _LIMIT,
    QueryTooDeep: _LIMIT,
    BatchTooLarge: _LIMIT,
    InvalidInput: Refusal(
        400,
        400,
        "body not JSON, not an object, wrong `Content-Type`, bad"
        " `query`/`variables`/`operationName`/`extensions`; a variable holding text no source"
        " can store (U+0000, a lone surrogate), at any depth",
    ),
    InvalidId: Refusal(
        400, 400, "`INVALID_ID` refusing a whole request (today only a field error, 200)"
    ),
    RequestTooLarge: Refusal(413, 413, "body larger than `max_body_bytes`"),
    RequestTimeout: Refusal(408, 408, "body not all arrived within `body_timeout` seconds"),
    MethodNotAllowed: Refusal(
        405, 405, "an operation sent by `GET`, or GraphiQL asked of production (`Allow: POST`)"
    ),
    NotAcceptable: Refusal(406, 406, "an `Accept` header that allows neither media type"),
    Unauthenticated: Refusal(
        401, 401, "no, malformed, expired or forged token (`UNAUTHENTICATED`)"
    ),
    Forbidden: Refusal(403, 403, "matter not allowed, or operation not registered (`FORBIDDEN`)"),
    PolicyError: Refusal(
        403, 403, "the access policy could not be evaluated (`FORBIDDEN`: fails closed)"
    ),
    RateLimited: Refusal(
        429, 429, "over the app's rate limit (`RATE_LIMITED`, with `Retry-After`)"
    ),
    SourceUnavailable: Refusal(
        503, 503, "`SOURCE_UNAVAILABLE` refusing a whole request (today only a field error, 200)"
    ),
    AuditUnavailable: Refusal(
        503, 503, "the audit event could not be committed (`AUDIT_UNAVAILABLE`, no data)"
    ),
}


def refusal_of(error: type[BaseException] | BaseException) -> Refusal:
    """The ``Refusal`` of an error (or error class); anything outside the tree is ``INTERNAL``."""
    kind = error if isinstance(error, type) else type(error)
    for cls in kind.__mro__:
        if issubclass(cls, GatewayError) and cls in REFUSALS:
            return REFUSALS[cls]
    return _INTERNAL


def error_code(error: BaseException) -> str:
    """The ``extensions.code`` for any exception; anything outside the tree is ``INTERNAL``."""
    return error.code if isinstance(error, GatewayError) else "INTERNAL"


def error_entry(
    error: BaseException,
    *,
    path: ResponsePath | None = None,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """The GraphQL error object for ``error`` at ``path``: a safe message and its code.

    An error outside the tree is a bug: the caller gets ``INTERNAL`` and no
    detail, the log gets the traceback with the path and the trace id.
    """
    entry: dict[str, Any]
    if isinstance(error, GatewayError):
        message = error.message
        if isinstance(error, PolicyError):
            message = "the access policy could not be evaluated"  # detail stays in the log
        entry = {"message": message, "extensions": {"code": error.code, **error.extensions}}
    else:
        if path is None:
            logger.error("unexpected error (trace %s)", trace_id, exc_info=error)
        else:
            logger.error("unexpected error at %s (trace %s)", list(path), trace_id, exc_info=error)
        entry = {"message": "internal error", "extensions": {"code": "INTERNAL"}}
    if path:
        entry["path"] = list(path)
    return entry


def format_error(error: GraphQLError, *, trace_id: str | None = None) -> dict[str, Any]:
    """A GraphQL error from parsing, validation or execution, with its code."""
    original = error.original_error
    entry: dict[str, Any]
    if original is None or isinstance(original, GraphQLError):
        # A syntax, validation or input-coercion error: about the request, not the gateway.
        entry = {"message": error.message, "extensions": {"code": "BAD_REQUEST"}}
    else:
        entry = error_entry(original, path=error.path, trace_id=trace_id)
    if error.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        entry.pop("path", None)  # after the locations, as graphql-core orders them
        entry["path"] = error.path
    return entry


def operation_errors(
    errors: Sequence[GraphQLError],
    partial: Sequence[tuple[ResponsePath, GatewayError]],
    *,
    trace_id: str,
    hide_schema: bool = False,
) -> list[dict[str, Any]]:
    """The ``errors`` of an operation that ran: those execution raised, then ``partial``,
    the errors of fields answered in part (a region that could not be read), at their paths.

    ``hide_schema`` (production mode) rewrites every ``BAD_REQUEST`` message (variables
    that do not coerce, say) so that it names no type or schema coordinate.
    """
    entries = [format_error(error, trace_id=trace_id) for error in errors]
    entries += [error_entry(error, path=path, trace_id=trace_id) for path, error in partial]
    if hide_schema:
        for entry in entries:
            if entry["extensions"]["code"] == "BAD_REQUEST":
                entry["message"] = hide_schema_names(entry["message"])
    return entries


class Answer:
    """A JSON response: its status, its header lines (as ASGI sends them) and its body.

    The header lines are those Starlette's ``Response`` would write for the same
    arguments, in its order: the extra headers (names lower-cased), ``content-length``,
    ``content-type`` (the media type as it is).
    """

    __slots__ = ("body", "headers", "media_type", "status")

    def __init__(
        self, body: bytes, status: int, media_type: str, extra: Mapping[str, str] | None = None
    ) -> None:
        self.body = body
        self.status = status
        self.media_type = media_type
        headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                   for name, value in extra.items()] if extra else []  # fmt: skip
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((b"content-type", _MEDIA_TYPES.get(media_type) or media_type.encode()))
        self.headers = headers

    def close_connection(self) -> None:
        """Ask the server to close the connection once this is sent (``Connection: close``)."""
        self.headers.append((b"connection", b"close"))

    async def send(self, send: Send) -> None:
        """Send it as the two ASGI messages of an HTTP response."""
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})

    def response(self) -> Response:
        """The same response as a Starlette ``Response`` (for the other routes)."""
        response = Response(self.body, self.status, media_type=self.media_type)
        response.raw_headers = list(self.headers)
        return response


_MEDIA_TYPES = {JSON: JSON.encode(), GRAPHQL_RESPONSE: GRAPHQL_RESPONSE.encode()}


def request_error(
    error: BaseException, media_type: str = JSON, *, trace_id: str | None = None
) -> Response:
    """``refusal`` as a Starlette response (for the routes other than ``POST /graphql``)."""
    return refusal(error, media_type, trace_id=trace_id).response()


def refusal(error: BaseException, media_type: str = JSON, *, trace_id: str | None = None) -> Answer:
    """A response refusing a request before it ran (no ``data`` key), or instead of a result
    that may not leave (no audit event). The trace id, if any, goes in the top-level
    ``extensions``; the status is the error class's ``Refusal``.
    """
    top = {"extensions": {"traceId": trace_id}} if trace_id is not None else {}
    status = refusal_of(error).status_for(media_type)
    if isinstance(error, InvalidDocument):
        errors = [format_error(e, trace_id=trace_id) for e in error.errors]
        return json_answer({"errors": errors, **top}, status, media_type)
    headers: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(error, MethodNotAllowed):
        headers["Allow"] = "POST"
    retry = error.extensions.get("retryAfter") if isinstance(error, GatewayError) else None
    if retry is not None:
        headers["Retry-After"] = str(retry)
    entry = error_entry(error, trace_id=trace_id)
    return json_answer({"errors": [entry], **top}, status, media_type, **headers)


def json_response(
    payload: dict[str, Any], status: int = 200, media_type: str = JSON, **headers: str
) -> Response:
    """``json_answer`` as a Starlette response (for the routes other than ``POST /graphql``)."""
    return json_answer(payload, status, media_type, **headers).response()


def json_answer(
    payload: dict[str, Any], status: int = 200, media_type: str = JSON, **headers: str
) -> Answer:
    """``payload`` as JSON; a payload orjson refuses still leaves as a JSON GraphQL error."""
    try:
        body = orjson.dumps(payload, default=str)
    except orjson.JSONEncodeError:
        # orjson writes no integer beyond 64 bits (and calls no ``default`` for one): an
        # error that echoes a caller's 1e300 would otherwise become a plain-text 500.
        try:
            body = orjson.dumps(_writable(payload), default=str)
        except orjson.JSONEncodeError:
            trace_id = (payload.get("extensions") or {}).get("traceId")
            logger.exception("response could not be encoded (trace %s)", trace_id)
            status, body = (
                500,
                orjson.dumps(
                    {"errors": [{"message": "internal error", "extensions": {"code": "INTERNAL"}}]}
                ),
            )
    return Answer(body, status, media_type, headers)


_INT64 = range(-(2**63), 2**64)


def _writable(value: Any) -> Any:
    """``value`` with every integer orjson cannot write turned into its decimal text."""
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        return str(value) if value.bit_length() < 14_000 else "a very large integer"
    if isinstance(value, dict):
        return {key: _writable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_writable(item) for item in value]
    return value
