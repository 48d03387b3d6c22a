"""The ``gateway`` source kind: a region served by another deltagate over HTTP(S).

The 国—省—市 cascade: a province runs its own gateway over its own databases
and hands the gateway above it a service token, not a DSN. The lower speaks the
unified schema, so rows need no mapping (``gateway.sources.upstream`` builds the
documents), and the lower's policy has already decided every value for the
token's identity: a value it masked or withheld arrives masked or ``None`` and
is passed on as it is (the policy above can only make it stricter, and the masks
are idempotent).

With a delegation (``delegation_audience`` and the upper's signing key): each
request also carries ``X-Delegation``, minted for the request's original caller
and matter (``gateway.core.cascade``), and the request's ``traceparent``; the
lower then decides for that caller (and for this gateway's right to act for
others), continues the trace, and returns the receipt of its audit event in
``extensions.auditReceipt``, which is added to the request's receipts for the
upper's own event. Without one, the lower decides for the service token's
identity, as above.

Batching holds across the hop: the fetches one request of the upper makes in
the same step of the event loop (a level's batches) are one HTTP request,
whatever the number of keys (more than 100 keys of a batch become several
aliased list fields of that request, the lower's batch limit per field); the
fetches of two requests never share one, since each carries its own caller's
delegation. A fetch that names its columns (a planned document's) asks the
lower for those fields only (``upstream.selection``), so the lower too reads,
decides and audits only what the operation needs.

Failures, as for ``postgres``: a connection error, a timeout, a 5xx, a lower
that refuses the service token or reports its own source or audit store down
raise :class:`SourceUnavailable` naming this region (the circuit breaker counts
them); a refusal of the values sent (``BAD_REQUEST``, ``INVALID_ID``) raises
:class:`InvalidInput`, names no region and never counts against the breaker.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
from opentelemetry.propagate import inject

from gateway.core.cascade import DEPTH_HEADER, MAX_DEPTH, CascadeRequest, current_request
from gateway.core.delegation import DelegationSigner
from gateway.core.errors import ConfigError, InvalidInput, SourceUnavailable
from gateway.core.types import Row
from gateway.sources.base import QueryObserver, Source
from gateway.sources.upstream import (
    Asked,
    Route,
    fetch_document,
    routes_for,
    row_from,
    search_document,
)

__all__ = ["GatewaySource"]

logger = logging.getLogger(__name__)

#: Codes of the lower's errors that say the values sent were refused: the caller's error.
_CALLER_CODES = frozenset({"BAD_REQUEST", "INVALID_ID", "BATCH_TOO_LARGE"})
#: Options of each connection to the lower (see ``GatewaySource._http``).
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
#: Page size of the lower's search (its ``max_page_size`` ceiling).
_PAGE = 100
#: The most characters of a receipt's hash and gateway id taken from a lower's answer.
_MAX_RECEIPT_TEXT = 128
#: Pages a search with ``after`` may walk to get past it (the lower's cursors are its own).
_MAX_PAGES = 20


@dataclass(slots=True)
class _Part:
    """One fetch waiting to be sent with the others of its request (``_coalesce``)."""

    entity: str
    field: str
    routes: Sequence[Route]
    keys: list[str]
    answer: asyncio.Future[tuple[dict[str, Any], Asked]]
    columns: frozenset[str] | None = None


class GatewaySource(Source):
    """A lower deltagate's ``/graphql``, as rows of one region in the unified vocabulary.

    ::

        source = GatewaySource("JS", "https://gw.js.example/graphql", token=service_token)
        await source.fetch("person", "id_number", ["320102199001011234"])
        # [{'id_number': '320102199001011234', 'name': '张*', 'phone': None, ...}]

    One ``httpx.AsyncClient`` per source keeps its connections alive between
    requests; :meth:`close` closes it.

    Args:
        region: the region code the lower's rows are kept under here.
        url: the lower's GraphQL endpoint.
        token: the service bearer token; the lower decides for its identity.
        matter: an ``X-Matter-Code`` sent with every request without a delegation, if any.
        timeout: seconds per request (connect, read, write and pool alike).
        observer: told of every request, as of a backend query.
        tls: the SSL context of ``https://`` connections: the CA the lower's
            certificate must chain to and the client certificate presented for
            mutual TLS (None: the system's CAs, no client certificate).
        delegation_audience: the lower's ``[delegation] id``: with ``signer``, every
            request made for a caller carries a delegation for that caller.
        signer: the upper's delegation key (``[delegation] signing_key``).
    """

    def __init__(
        self,
        region: str,
        url: str,
        *,
        token: str,
        matter: str | None = None,
        timeout: float = 5.0,
        observer: QueryObserver | None = None,
        tls: ssl.SSLContext | None = None,
        delegation_audience: str | None = None,
        signer: DelegationSigner | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"source {region}: url must be http:// or https://, not {url!r}")
        if not token:
            raise ConfigError(f"source {region}: a service token is required")
        if timeout <= 0:
            raise ConfigError(f"source {region}: timeout must be positive")
        if delegation_audience is not None and signer is None:
            raise ConfigError(
                f"source {region}: delegation_audience needs the upper's"
                " [delegation] signing_key and signing_key_id"
            )
        self.region = region
        self.url = url
        self._observer = observer
        self._timeout = timeout
        headers = {
            "Authorization": f"Bearer {token}",
            # The media type whose status codes tell a refused request from one that ran.
            "Accept": "application/graphql-response+json, application/json;q=0.9",
        }
        self._matter = matter or None
        self._audience = delegation_audience
        self._signer = signer if delegation_audience is not None else None
        self._headers = headers
        self._tls = tls
        self._client: httpx.AsyncClient | None = None
        self._waiting: dict[int, list[_Part]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # TCP_NODELAY: a request goes out as headers, then body, in two writes; with
            # Nagle's algorithm the body waited for the lower's delayed ACK, about 40 ms
            # added to every hop (measured with bench/cascade.py).
            transport = httpx.AsyncHTTPTransport(
                verify=self._tls or True, socket_options=_SOCKET_OPTIONS
            )
            self._client = httpx.AsyncClient(
                headers=self._headers, timeout=self._timeout, transport=transport
            )
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def fetch(
        self,
        entity: str,
        field: str,
        values: Sequence[str],
        *,
        columns: Collection[str] | None = None,
    ) -> list[Row]:
        routes = routes_for(entity, field)
        keys = list(dict.fromkeys(values))
        if not any(route.accepts(key) for route in routes for key in keys):
            return []  # no key the lower could take: nothing to ask
        started = time.perf_counter()
        # Only the fields asked for (the lower decides, masks and audits those alone).
        wanted = None if columns is None else frozenset(columns)
        part = _Part(
            entity, field, routes, keys, asyncio.get_running_loop().create_future(), wanted
        )
        self._coalesce(part)
        data, asked = await part.answer
        rows: list[Row] = []
        for alias, route, chunk in asked:
            items = data.get(alias) or []
            for key, item in zip(chunk, items, strict=False):
                if not isinstance(item, Mapping):
                    continue  # unknown, or not released to this gateway's identity
                children = [item] if route.link is None else (item.get(route.link) or [])
                for child in children:
                    row = row_from(entity, child)
                    # Matched by position: the key asked (this gateway's own value,
                    # which it routed by), not a value the lower may have masked.
                    row[field] = key
                    rows.append(row)
        self._observed(entity, field, len(keys), len(rows), started)
        return rows

    def _coalesce(self, part: _Part) -> None:
        """Send ``part`` with the other fetches of the same request made in this step of
        the event loop: a level's batches (a person's residences and social insurance,
        an enterprise's representative and credit records) go as one HTTP request, so
        the lower answers, decides and audits them once. Fetches of different requests
        never share one: each carries its own caller's delegation."""
        request = id(current_request())
        waiting = self._waiting.setdefault(request, [])
        waiting.append(part)
        if len(waiting) == 1:
            # The callback runs in this context (the request's), and so does its task.
            asyncio.get_running_loop().call_soon(self._send_waiting, request)

    def _send_waiting(self, request: int) -> None:
        parts = self._waiting.pop(request, [])
        task = asyncio.ensure_future(self._send(parts))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, parts: list[_Part]) -> None:
        document, variables, asked = fetch_document(
            [(part.entity, part.routes, part.keys) for part in parts],
            [part.columns for part in parts],
        )
        what = "+".join(f"{part.entity}.{part.field}" for part in parts)
        try:
            data = await self._post(document, variables, what)
        except Exception as exc:  # every part of the request failed alike
            for part in parts:
                if not part.answer.done():
                    part.answer.set_exception(exc)
            return
        for part, mine in zip(parts, asked, strict=True):
            if not part.answer.done():
                part.answer.set_result((data, mine))

    async def search(
        self,
        entity: str,
        field: str,
        prefix: str,
        *,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Row]:
        document = search_document(entity)
        if field != "name":
            raise ValueError(f"a gateway source searches {entity} by name, not {field}")
        if limit < 1:
            return []
        started = time.perf_counter()
        # The lower's cursors are sealed with its own secret, so a position given as
        # (name, uscc) is reached by reading its pages from the start.
        rows: list[Row] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES if after is not None else 1):
            first = min(_PAGE, limit) if after is None else _PAGE
            variables = {"name": prefix, "region": self.region, "first": first, "after": cursor}
            data = await self._post(document, variables, f"{entity}.search")
            page = data.get("searchLegalPersons") or {}
            for edge in page.get("edges") or []:
                row = row_from(entity, edge["node"])
                if after is None or (str(row["name"]), str(row["uscc"])) > after:
                    rows.append(row)
            info = page.get("pageInfo") or {}
            if len(rows) >= limit or not info.get("hasNextPage"):
                break
            cursor = info.get("endCursor")
        self._observed(entity, field, 1, len(rows), started)
        return rows[:limit]

    async def ping(self) -> None:
        await self._post("{ __typename }", {}, "ping")

    async def _post(self, document: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        headers: dict[str, str] = {}
        inject(headers)  # the configured propagators' headers
        request = current_request()
        depth = 0 if request is None else request.depth
        if depth >= MAX_DEPTH:
            # A loop of gateways (each other's [upper]), or a caller claiming a depth: the
            # request's own doing, so never counted against the breaker.
            logger.warning("source %s: %s not sent: %d gateways deep", self.region, what, depth)
            raise InvalidInput(f"the request has passed through {depth} gateways, the most")
        headers[DEPTH_HEADER] = str(depth + 1)
        if request is not None and request.traceparent is not None:
            headers["traceparent"] = request.traceparent  # the operation's, whatever propagates
        delegated = None
        if request is not None and self._signer is not None and self._audience is not None:
            delegated = request
            # One delegation per request: the lower refuses a jti it has seen.
            headers["X-Delegation"] = self._signer.mint(
                self._audience, request.caller, request.matter, request.traceparent
            )
            # The lower checks the header against the delegation's (signed) matter.
            if request.matter is not None:
                headers["X-Matter-Code"] = request.matter
        elif self._matter is not None:
            headers["X-Matter-Code"] = self._matter
        try:
            response = await self._http().post(
                self.url, json={"query": document, "variables": variables}, headers=headers
            )
        except httpx.TransportError as exc:  # refused, reset, timed out (connect or read)
            self._unavailable(what, f"{type(exc).__name__}: {exc}")
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            # The lower is down, or refuses this gateway (its token, its rate): not the caller's.
            self._unavailable(what, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            self._unavailable(what, f"HTTP {response.status_code}, not JSON")
        codes = [
            (entry.get("extensions") or {}).get("code")
            for entry in body.get("errors") or []
            if isinstance(entry, Mapping)
        ]
        if codes and all(code in _CALLER_CODES for code in codes):
            # A value sent was refused: never the region's fault (see breaker.py).
            logger.info("source %s: %s refused by the lower: %s", self.region, what, codes)
            raise InvalidInput("a value in the request cannot match any record")
        if codes or response.status_code != 200 or not isinstance(body.get("data"), dict):
            # SOURCE_UNAVAILABLE or AUDIT_UNAVAILABLE below, FORBIDDEN for this gateway's
            # matter, INTERNAL: the lower could not answer for its region.
            self._unavailable(what, f"HTTP {response.status_code}, errors {codes}")
        if request is not None:
            self._decided_below(request, body.get("extensions"))
        if delegated is not None:
            self._receipt(delegated, body.get("extensions"))
        data: dict[str, Any] = body["data"]
        return data

    def _decided_below(self, request: CascadeRequest, extensions: Any) -> None:
        """Note the lower's masked and withheld decisions, for the upper's record of its own.

        The lower's owner is not taken from its answer (it may hide it): whatever it
        decided, it decided for rows this source returns as this region's.
        """
        policy = extensions.get("policy") if isinstance(extensions, Mapping) else None
        entries = policy.get("fields") if isinstance(policy, Mapping) else None
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, Mapping):
                continue
            field, decision = entry.get("field"), entry.get("decision")
            if isinstance(field, str) and decision in ("MASKED", "WITHHELD"):
                request.below.append({"field": field, "owner": self.region, "decision": decision})

    def _receipt(self, request: CascadeRequest, extensions: Any) -> None:
        """Keep the lower's receipt for its audit event, if its answer holds a well-formed one.

        Only its shape is checked here: whether it names a real event is for
        ``deltagate audit reconcile``, which reads the lower's log.
        """
        receipt = extensions.get("auditReceipt") if isinstance(extensions, Mapping) else None
        if not isinstance(receipt, Mapping):
            return  # the lower wrote no event (nothing of L2+ was read)
        gateway, seq, digest = receipt.get("gateway"), receipt.get("seq"), receipt.get("hash")
        chain = receipt.get("chain")
        if (
            not isinstance(gateway, str)
            or not isinstance(digest, str)
            or isinstance(seq, bool)
            or not isinstance(seq, int)
            or len(gateway) > _MAX_RECEIPT_TEXT
            or len(digest) > _MAX_RECEIPT_TEXT
            or (chain is not None and not isinstance(chain, str | int))
        ):
            logger.warning("source %s: a malformed audit receipt was not kept", self.region)
            return
        kept: dict[str, Any] = {
            "gateway": gateway, "region": self.region, "seq": seq, "hash": digest,
        }  # fmt: skip
        if chain is not None:
            kept["chain"] = chain
        request.receipts.append(kept)

    def _unavailable(self, what: str, detail: str) -> NoReturn:
        # Only the kind of failure is logged: keys and values are personal data.
        logger.warning("source %s: %s at %s failed: %s", self.region, what, self.url, detail)
        raise SourceUnavailable(self.region) from None

    def _observed(self, entity: str, field: str, keys: int, rows: int, started: float) -> None:
        if self._observer is not None:
            elapsed = time.perf_counter() - started
            self._observer(self.region, entity, field, keys, rows, elapsed)
