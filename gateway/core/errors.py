"""The gateway's error tree, and the one place it becomes ``extensions.code``.

::

    GatewayError                      INTERNAL
    ├── ConfigError                   INTERNAL (raised at start-up, never to a caller)
    ├── Unauthenticated               UNAUTHENTICATED (HTTP 401)
    ├── Forbidden                     FORBIDDEN
    ├── InvalidInput                  BAD_REQUEST
    │   ├── InvalidId                 INVALID_ID
    │   ├── InvalidDocument           BAD_REQUEST (GraphQL request errors: does not parse or
    │   │                             validate; HTTP 200 as application/json, else 400)
    │   ├── RequestTooLarge           BAD_REQUEST (HTTP 413)
    │   └── RequestTimeout            BAD_REQUEST (HTTP 408: the body came too slowly)
    ├── LimitExceeded                 QUERY_TOO_COMPLEX
    │   ├── QueryTooDeep              QUERY_TOO_DEEP
    │   ├── BatchTooLarge             BATCH_TOO_LARGE
    │   └── RateLimited               RATE_LIMITED (HTTP 429)
    ├── SourceError                   INTERNAL
    │   └── SourceUnavailable         SOURCE_UNAVAILABLE (names the region)
    ├── PolicyError                   FORBIDDEN (fails closed)
    └── AuditUnavailable              AUDIT_UNAVAILABLE

Anything that is not a ``GatewayError`` is reported as ``INTERNAL`` with no
detail: the message, the stack and any SQL stay in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from graphql import GraphQLError


class GatewayError(Exception):
    """Base class: an error whose message is safe to show to the caller."""

    code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 200

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class ConfigError(GatewayError):
    """Configuration that cannot be used; raised while starting, never to a caller."""


class Unauthenticated(GatewayError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(GatewayError):
    code = "FORBIDDEN"


class InvalidInput(GatewayError):
    code = "BAD_REQUEST"


class InvalidId(InvalidInput):
    """An ID number or USCC with a wrong format or check character."""

    code = "INVALID_ID"


class InvalidDocument(InvalidInput):
    """The document does not parse or validate, or does not hold the operation asked for.

    These are GraphQL request errors: each of ``errors`` is shown with its
    message and locations, and nothing was executed.
    """

    def __init__(self, errors: Sequence[GraphQLError]) -> None:
        super().__init__(errors[0].message if errors else "the document is not valid")
        self.errors = list(errors)


class RequestTooLarge(InvalidInput):
    """The request body is larger than the gateway reads."""

    http_status = 413


class RequestTimeout(InvalidInput):
    """The request body did not arrive within the gateway's deadline."""

    http_status = 408


class LimitExceeded(GatewayError):
    code = "QUERY_TOO_COMPLEX"


class QueryTooDeep(LimitExceeded):
    code = "QUERY_TOO_DEEP"


class BatchTooLarge(LimitExceeded):
    code = "BATCH_TOO_LARGE"


class RateLimited(LimitExceeded):
    code = "RATE_LIMITED"
    http_status = 429


class SourceError(GatewayError):
    """A regional source answered with something the gateway cannot use."""


class SourceUnavailable(SourceError):
    code = "SOURCE_UNAVAILABLE"

    def __init__(self, region: str, message: str | None = None) -> None:
        super().__init__(message or f"source for region {region} is unavailable", region=region)
        self.region = region

    def unnamed(self) -> SourceUnavailable:
        """The same outage without the region, for a caller who may not know which region
        keeps the record (a representative's home region is their household region)."""
        error = SourceUnavailable(self.region, "the source that keeps this record is unavailable")
        error.extensions = {}
        return error


class PolicyError(GatewayError):
    """The policy could not be evaluated; the gateway refuses rather than guess."""

    code = "FORBIDDEN"


class AuditUnavailable(GatewayError):
    code = "AUDIT_UNAVAILABLE"


def error_code(error: BaseException) -> str:
    """The ``extensions.code`` for any exception; unknown ones are ``INTERNAL``."""
    if isinstance(error, GatewayError):
        return error.code
    return "INTERNAL"
