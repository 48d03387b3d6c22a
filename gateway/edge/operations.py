"""Registered operations: a manifest of the documents a gateway accepts, by SHA-256.

A data-sharing platform registers its interfaces before anyone may call them;
deltagate does the same with GraphQL documents. With ``[operations] manifest``
configured, a request runs only if the SHA-256 of its document (the exact
UTF-8 text sent as ``query``) is in the manifest; anything else is refused
with ``FORBIDDEN`` and the hash, before it is parsed. A client may also send
the hash alone, as a persisted query::

    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "5b1f…"}},
     "variables": {"idNumber": "…"}}

The manifest is a JSON file written by ``deltagate operations register
FILE.graphql`` (which validates each document against the schema and the
limits first) and read again by a running gateway when it changes::

    {"operations": {"5b1f…": {"name": "CounterLookup", "file": "counter-lookup.graphql",
                              "registeredAt": "2025-05-01T08:00:00+00:00",
                              "document": "query CounterLookup($idNumber: ID!) {…}\\n"}}}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import OperationDefinitionNode

from gateway.core.errors import ConfigError, Forbidden, GatewayError, InvalidDocument, InvalidInput
from gateway.edge.datafile import WatchedFile
from gateway.edge.documents import DocumentGuard, document_hash
from gateway.edge.http import OperationRequest


def load_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The registered operations of a manifest file, by hash; ``ConfigError`` if it is unusable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the operations manifest ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: the operations manifest is not valid JSON ({exc})") from None
    operations = raw.get("operations") if isinstance(raw, dict) else None
    if not isinstance(operations, dict):
        raise ConfigError(f"{path}: the operations manifest needs an 'operations' object")
    for digest, entry in operations.items():
        document = entry.get("document") if isinstance(entry, dict) else None
        if not isinstance(document, str) or document_hash(document) != digest:
            raise ConfigError(f"{path}: operation {digest} does not match its document")
    return operations


class OperationManifest:
    """The registered operations in force, re-read when the file changes.

    Raises:
        ConfigError: the file cannot be read at start.
    """

    def __init__(self, path: Path, *, reload_interval: float = 2.0) -> None:
        self._file = WatchedFile(path, load_manifest, interval=reload_interval)

    @property
    def path(self) -> Path:
        return self._file.path

    def __contains__(self, digest: str) -> bool:
        return digest in self._file.value

    def document_for(self, operation: OperationRequest) -> str:
        """The document to run for a request, if it is registered.

        Raises:
            Forbidden: the document (or the hash sent) is not registered; names the hash.
            InvalidInput: the hash sent does not match the document sent.
        """
        registered = self._file.value
        sent = operation.persisted_hash
        if operation.query is None:
            entry = registered.get(sent or "")
            if entry is None:
                raise _unregistered(sent or "")
            return str(entry["document"])
        digest = document_hash(operation.query)
        if sent is not None and sent != digest:
            raise InvalidInput("persistedQuery.sha256Hash does not match the document sent")
        if digest not in registered:
            raise _unregistered(digest)
        return operation.query


def _unregistered(digest: str) -> Forbidden:
    return Forbidden(f"operation {digest} is not registered with this gateway", sha256=digest)


@dataclass(frozen=True, slots=True)
class Registered:
    """What ``register`` did with one file."""

    file: Path
    sha256: str
    names: tuple[str, ...]
    new: bool


def register(manifest: Path, files: Sequence[Path], guard: DocumentGuard) -> list[Registered]:
    """Add each document to the manifest (created if missing) after checking it.

    A document is checked as a request's would be: size, tokens, shape limits
    and validation against the schema. Nothing is written unless every file
    passes.

    Raises:
        ConfigError: a file cannot be read, or a document is refused (the reason is named).
    """
    operations: dict[str, Any] = load_manifest(manifest) if manifest.exists() else {}
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    done = []
    for file in files:
        try:
            document = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
        names = _check(file, document, guard)
        digest = document_hash(document)
        new = digest not in operations
        if new:
            operations[digest] = {
                "name": ", ".join(names),
                "file": file.name,
                "registeredAt": now,
                "document": document,
            }
        done.append(Registered(file, digest, names, new))
    _write(manifest, operations)
    return done


def _check(file: Path, document: str, guard: DocumentGuard) -> tuple[str, ...]:
    try:
        parsed = guard.examine(document)
    except InvalidDocument as error:
        reasons = "; ".join(e.message for e in error.errors)
        raise ConfigError(f"{file}: the document is not valid: {reasons}") from None
    except GatewayError as error:
        raise ConfigError(f"{file}: {error}") from None
    names = tuple(
        d.name.value if d.name else "(anonymous)"
        for d in parsed.definitions
        if isinstance(d, OperationDefinitionNode)
    )
    if not names:
        raise ConfigError(f"{file}: the document holds no operation")
    return names


def _write(path: Path, operations: Mapping[str, Any]) -> None:
    """Replace the manifest in one step, so a running gateway never reads half a file."""
    content = {"operations": dict(sorted(operations.items()))}
    text = json.dumps(content, ensure_ascii=False, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
