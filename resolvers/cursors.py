"""Opaque page cursors.

A cursor holds the raw position of a row in its list (a name and a USCC, or a
date and a record id). Those values may be masked or withheld for the caller
who receives the cursor, so the position is encrypted and authenticated,
keyed from the gateway's secret: the caller can hand it back, but can neither
read it nor forge one. Every worker with the same secret accepts every other
worker's cursors.

A cursor is AES-256-GCM-SIV over the position, with a random nonce, as
unpadded URL-safe base64 of a version byte, the nonce and the sealed position.
A search page makes one per edge, and Fernet (the earlier form: AES-CBC and
HMAC assembled in Python) cost a search page a tenth of its time; the AEAD is
one call. GCM-SIV rather than GCM because the key lives as long as the secret
and is shared by every worker: a repeated random nonce, unlikely as it is,
gives away no more than that two cursors hold the same position. Cursors of
the earlier form are still read, so a caller paging across an upgrade is not
refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from gateway.core.errors import InvalidInput

#: The first byte of a cursor, also bound into its seal (a later form gets another).
_VERSION = b"\x01"
_NONCE = 12
_TAG = 16
#: How a Fernet token, a cursor of the earlier form, begins (its version byte 0x80).
_FERNET_PREFIX = "gAAAAA"


class CursorCodec:
    """Encode and decode page positions (lists of strings) as opaque cursors."""

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(b"deltagate cursor v1\x00" + secret).digest()
        self._seal = AESGCMSIV(key)
        earlier = hashlib.sha256(b"deltagate cursor\x00" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(earlier))

    def encode(self, position: Sequence[str]) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._seal.encrypt(nonce, orjson.dumps(list(position)), _VERSION)
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).rstrip(b"=").decode("ascii")

    def decode(self, cursor: str, argument: str = "after") -> list[str]:
        """The position a cursor names; ``BAD_REQUEST`` for anything this gateway did not make."""
        try:
            position = orjson.loads(self._open(cursor))
        except (InvalidTag, InvalidToken, ValueError, TypeError):
            position = None
        if not isinstance(position, list) or not all(isinstance(p, str) for p in position):
            raise InvalidInput(f"{argument} is not a valid cursor", argument=argument)
        return position

    def _open(self, cursor: str) -> bytes:
        if cursor.startswith(_FERNET_PREFIX):
            return self._fernet.decrypt(cursor.encode("ascii"))
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # One text per cursor: base64 that decodes alike but reads otherwise (unused low
        # bits in its last character) is not the cursor the gateway made.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != cursor:
            raise ValueError("not the cursor's own text")
        if len(raw) < 1 + _NONCE + _TAG or raw[:1] != _VERSION:
            raise ValueError("not a cursor of this form")
        return self._seal.decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], _VERSION)
