"""GraphQL errors as the gateway shows them: a code, a safe message, never a trace or SQL.

This is the one place an exception becomes ``extensions.code``: the gateway's
own errors carry their code and extensions; GraphQL syntax and validation
errors are ``BAD_REQUEST``; anything else is ``INTERNAL`` with a fixed
message (the detail is in the server log only).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.responses import Response

from gateway.core.errors import GatewayError, InvalidDocument, PolicyError, Unauthenticated

logger = logging.getLogger(__name__)

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"

#: HTTP statuses of errors raised before any GraphQL execution. Limits (``QUERY_TOO_DEEP``,
#: ``QUERY_TOO_COMPLEX``, ``BATCH_TOO_LARGE``) are 400 with either media type.
REQUEST_STATUS = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "BAD_REQUEST": 400,
    "RATE_LIMITED": 429,
    "SOURCE_UNAVAILABLE": 503,
    "AUDIT_UNAVAILABLE": 503,
    "INTERNAL": 500,
}


def error_entry(error: GatewayError) -> dict[str, Any]:
    """A GraphQL error object for a gateway error."""
    message = str(error)
    if isinstance(error, PolicyError):
        message = "the access policy could not be evaluated"  # detail stays in the log
    return {"message": message, "extensions": {"code": error.code, **error.extensions}}


def format_error(error: GraphQLError) -> dict[str, Any]:
    """A GraphQL error from execution, with its code and without anything internal."""
    original = error.original_error
    entry: dict[str, Any]
    if original is None or isinstance(original, GraphQLError):
        # A syntax, validation or input-coercion error: about the request, not the gateway.
        entry = {"message": error.message, "extensions": {"code": "BAD_REQUEST"}}
    elif isinstance(original, GatewayError):
        entry = error_entry(original)
    else:
        entry = {"message": "internal error", "extensions": {"code": "INTERNAL"}}
    if error.locations:
        entry["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        entry["path"] = error.path
    return entry


def json_response(
    payload: dict[str, Any], status: int = 200, media_type: str = JSON, **headers: str
) -> Response:
    """``payload`` as JSON; a payload orjson refuses still leaves as a JSON GraphQL error."""
    try:
        body = orjson.dumps(payload, default=str)
    except orjson.JSONEncodeError:
        # orjson writes no integer beyond 64 bits (and calls no ``default`` for one): an
        # error that echoes a caller's 1e300 would otherwise become a plain-text 500.
        try:
            body = orjson.dumps(_writable(payload), default=str)
        except orjson.JSONEncodeError:
            logger.exception("response could not be encoded")
            status, body = (
                500,
                orjson.dumps(
                    {"errors": [{"message": "internal error", "extensions": {"code": "INTERNAL"}}]}
                ),
            )
    return Response(body, status_code=status, media_type=media_type, headers=headers or None)


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


def request_error(
    error: GatewayError, media_type: str = JSON, *, extensions: dict[str, Any] | None = None
) -> Response:
    """A response for an error raised before execution (no ``data`` key: nothing ran), or
    instead of a result that may not leave (no audit event). ``extensions`` (the trace id)
    go at the top level.

    GraphQL request errors proper (a document that does not parse or validate)
    follow the GraphQL over HTTP specification: 200 as ``application/json``,
    400 as ``application/graphql-response+json``. Every other refusal has its
    own 4xx status with either media type.
    """
    top = {"extensions": extensions} if extensions else {}
    if isinstance(error, InvalidDocument):
        status = 400 if media_type == GRAPHQL_RESPONSE else 200
        errors = [format_error(e) for e in error.errors]
        return json_response({"errors": errors, **top}, status, media_type)
    status = error.http_status if error.http_status != 200 else REQUEST_STATUS.get(error.code, 400)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthenticated) else {}
    retry = error.extensions.get("retryAfter")
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return json_response({"errors": [error_entry(error)], **top}, status, media_type, **headers)
