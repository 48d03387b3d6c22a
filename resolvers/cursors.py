"""Opaque page cursors.

A cursor holds the raw position of a row in its list (a name and a USCC, or a
date and a record id). Those values may be masked or withheld for the caller
who receives the cursor, so the position is encrypted and authenticated
(Fernet, keyed from the gateway's secret): the caller can hand it back, but
can neither read it nor forge one. Every worker with the same secret accepts
every other worker's cursors.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import orjson
from cryptography.fernet import Fernet, InvalidToken

from gateway.core.errors import InvalidInput


class CursorCodec:
    """Encode and decode page positions (lists of strings) as opaque cursors."""

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(b"deltagate cursor\x00" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encode(self, position: Sequence[str]) -> str:
        return self._fernet.encrypt(orjson.dumps(list(position))).decode()

    def decode(self, cursor: str, argument: str = "after") -> list[str]:
        """The position a cursor names; ``BAD_REQUEST`` for anything this gateway did not make."""
        try:
            position = orjson.loads(self._fernet.decrypt(cursor.encode()))
        except (InvalidToken, ValueError, TypeError):
            position = None
        if not isinstance(position, list) or not all(isinstance(p, str) for p in position):
            raise InvalidInput(f"{argument} is not a valid cursor", argument=argument)
        return position
