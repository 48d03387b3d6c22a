"""The gateway's error tree: every error a caller can be shown, with its ``extensions.code``.

::

    GatewayError                      INTERNAL
    ├── ConfigError                   INTERNAL (raised at start-up, never to a caller)
    ├── Unauthenticated               UNAUTHENTICATED
    ├── Forbidden                     FORBIDDEN
    ├── InvalidInput                  BAD_REQUEST
    │   ├── InvalidId                 INVALID_ID
    │   ├── InvalidDocument           BAD_REQUEST (GraphQL request errors: does not parse or
    │   │                             validate, or the variables do not coerce)
    │   ├── RequestTooLarge           BAD_REQUEST (the body is too large)
    │   ├── RequestTimeout            BAD_REQUEST (the body came too slowly)
    │   ├── MethodNotAllowed          BAD_REQUEST (an operation sent by GET)
    │   └── NotAcceptable             BAD_REQUEST (the Accept header allows no response type)
    ├── LimitExceeded                 QUERY_TOO_COMPLEX
    │   ├── QueryTooDeep              QUERY_TOO_DEEP
    │   ├── BatchTooLarge             BATCH_TOO_LARGE
    │   └── RateLimited               RATE_LIMITED
    ├── SourceError                   INTERNAL
    │   └── SourceUnavailable         SOURCE_UNAVAILABLE (names the region, unless ``unnamed``)
    ├── PolicyError                   FORBIDDEN (fails closed)
    └── AuditUnavailable              AUDIT_UNAVAILABLE

The code is the class's; how an error is shown to a caller (its JSON entry)
and which HTTP status it gives a request it refuses are decided at the edge,
in one place (``gateway.edge.responses``). Anything that is not a
``GatewayError`` is shown as ``INTERNAL`` with no detail: the message, the
stack and any SQL stay in the log, with the trace id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from graphql import GraphQLError


class GatewayError(Exception):
    """Base class: an error whose message is safe to show to the caller."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class ConfigError(GatewayError):
    """Configuration that cannot be used; raised while starting, never to a caller."""


class Unauthenticated(GatewayError):
    """No token, or one that is malformed, expired, too long-lived or forged."""

    code = "UNAUTHENTICATED"


class Forbidden(GatewayError):
    """A matter the caller may not use, or an operation not registered with the gateway."""

    code = "FORBIDDEN"


class InvalidInput(GatewayError):
    """Something the caller sent that the gateway does not take: the request, a value, a key."""

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


class RequestTimeout(InvalidInput):
    """The request body did not arrive within the gateway's deadline."""


class MethodNotAllowed(InvalidInput):
    """An operation sent by ``GET`` (or GraphiQL asked of a production gateway): only ``POST``
    runs operations, so personal keys stay out of URLs and a mutation never runs by ``GET``."""


class NotAcceptable(InvalidInput):
    """The ``Accept`` header allows neither response media type the gateway writes."""


class LimitExceeded(GatewayError):
    """An operation over a query limit the operator configured; refused before it runs."""

    code = "QUERY_TOO_COMPLEX"


class QueryTooDeep(LimitExceeded):
    code = "QUERY_TOO_DEEP"


class BatchTooLarge(LimitExceeded):
    code = "BATCH_TOO_LARGE"


class RateLimited(LimitExceeded):
    code = "RATE_LIMITED"


class SourceError(GatewayError):
    """A regional source answered with something the gateway cannot use."""


class SourceUnavailable(SourceError):
    """A region's source cannot be read (down, timed out, its breaker open)."""

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
    """The audit event could not be committed: the data it records does not leave (fail closed)."""

    code = "AUDIT_UNAVAILABLE"
