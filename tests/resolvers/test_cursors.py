"""Page cursors: opaque, sealed, and read back only by a gateway with the same secret."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from cryptography.fernet import Fernet

from gateway.core.errors import InvalidInput
from resolvers.cursors import CursorCodec

POSITION = ["上海浦江建设有限公司", "91310000MA1K5XQ21C"]


def test_a_cursor_reads_back_as_its_position_and_shows_none_of_it() -> None:
    codec = CursorCodec(b"one secret")
    cursor = codec.encode(POSITION)
    assert codec.decode(cursor) == POSITION
    assert cursor.isascii()
    assert "=" not in cursor
    sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b"91310000" not in sealed
    assert "上海".encode() not in sealed


def test_two_cursors_of_one_position_differ() -> None:
    codec = CursorCodec(b"one secret")
    assert codec.encode(POSITION) != codec.encode(POSITION)


def test_another_secrets_cursor_is_refused() -> None:
    cursor = CursorCodec(b"one secret").encode(POSITION)
    with pytest.raises(InvalidInput) as refused:
        CursorCodec(b"another secret").decode(cursor, "after")
    assert refused.value.extensions == {"argument": "after"}


def test_a_cursor_of_the_earlier_form_is_still_read() -> None:
    # Made by a worker before the upgrade: Fernet under the key the earlier form derived.
    key = hashlib.sha256(b"deltagate cursor\x00" + b"one secret").digest()
    earlier = Fernet(base64.urlsafe_b64encode(key)).encrypt(orjson.dumps(POSITION)).decode()
    assert CursorCodec(b"one secret").decode(earlier) == POSITION
    with pytest.raises(InvalidInput):
        CursorCodec(b"another secret").decode(earlier)


def bit_flips(cursor: str) -> list[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flips = []
    for where in range(len(cursor)):
        other = alphabet[(alphabet.index(cursor[where]) + 1) % 64]
        flips.append(cursor[:where] + other + cursor[where + 1 :])
    return flips


def test_every_changed_character_and_every_cut_is_refused() -> None:
    codec = CursorCodec(b"one secret")
    cursor = codec.encode(POSITION)
    altered = [*bit_flips(cursor), cursor[:-1], cursor[1:], cursor + "A", "", "é" * 8]
    for text in altered:
        with pytest.raises(InvalidInput):
            codec.decode(text)
