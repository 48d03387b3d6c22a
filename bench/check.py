"""Before anything is timed: every server gives the same answer to the same requests.

The floor is only a fair bar if it answers the same question: its ``data``
must equal the gateway's, masked values included, for a sample of the very
requests the load generator will send. Page cursors are encrypted with a
fresh nonce each time, so they are compared by what they decrypt to. The
same check also reads each server's ``extensions.backendQueries``: the
number of queries an operation costs.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from resolvers.cursors import CursorCodec

_CURSOR_KEYS = frozenset({"cursor", "endCursor"})


class Mismatch(Exception):
    """Two servers answered one request differently."""


@dataclass
class CheckResult:
    """What the check found for one operation.

    Attributes:
        samples: requests compared.
        queries: per variant, the backend queries each sampled request cost.
    """

    samples: int = 0
    queries: dict[str, list[int]] = field(default_factory=dict)


def post(url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=body,
        headers={**headers, "Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        payload: dict[str, Any] = orjson.loads(response.read())
    return payload


def check_operation(
    urls: dict[str, str],
    bodies: Sequence[bytes],
    headers: dict[str, str],
    codec: CursorCodec,
    reference: str = "gateway",
    unlike: Collection[str] = (),
) -> CheckResult:
    """Send each body to every server; raise ``Mismatch`` on any difference or error.

    The servers named in ``unlike`` must answer without errors, but their data is
    not compared (a baseline that leaves the policy out answers differently).
    """
    result = CheckResult(queries={name: [] for name in urls})
    for body in bodies:
        answers = {}
        for name, url in urls.items():
            payload = post(url, body, headers)
            if payload.get("errors"):
                raise Mismatch(f"{name} answered with errors: {payload['errors']!r:.500}")
            answers[name] = _decoded(payload.get("data"), codec)
            result.queries[name].append(
                int(payload.get("extensions", {}).get("backendQueries", -1))
            )
        comparable = [name for name in answers if name not in unlike]
        if not comparable:
            result.samples += 1
            continue
        expected = answers.get(reference, answers[comparable[0]])
        for name, data in answers.items():
            if name in unlike:
                continue
            where = _difference(expected, data, "data")
            if where is not None:
                raise Mismatch(
                    f"{name} and {reference} differ at {where} for the request {body[:300]!r}"
                )
        result.samples += 1
    return result


def _decoded(value: Any, codec: CursorCodec) -> Any:
    if isinstance(value, dict):
        return {
            key: codec.decode(item) if key in _CURSOR_KEYS and isinstance(item, str)
            else _decoded(item, codec)
            for key, item in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [_decoded(item, codec) for item in value]
    return value


def _difference(expected: Any, found: Any, path: str) -> str | None:
    """The path of the first difference, with both values; None if equal."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(set(expected) | set(found)):
            if key not in expected or key not in found:
                return f"{path}.{key} (present in one answer only)"
            where = _difference(expected[key], found[key], f"{path}.{key}")
            if where is not None:
                return where
        return None
    if isinstance(expected, list) and isinstance(found, list):
        if len(expected) != len(found):
            return f"{path} (lengths {len(expected)} and {len(found)})"
        for index, (a, b) in enumerate(zip(expected, found, strict=True)):
            where = _difference(a, b, f"{path}[{index}]")
            if where is not None:
                return where
        return None
    if expected != found or type(expected) is not type(found):
        return f"{path} ({expected!r:.80} != {found!r:.80})"
    return None
