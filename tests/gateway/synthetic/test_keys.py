"""The fast identifier builders agree with the reference implementations of the standards."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.identifiers import (
    USCC_CHARSET,
    is_valid_id_number,
    is_valid_uscc,
    make_id_number,
    make_uscc,
)
from gateway.synthetic import keys
from gateway.synthetic.divisions import DIVISIONS

AREAS = [d.code for divisions in DIVISIONS.values() for d in divisions]


@given(st.sampled_from(AREAS), st.integers(0, keys.MAX_PERSONS - 1))
def test_id_number_matches_gb_11643_reference(area: str, slot: int) -> None:
    id_number, day = keys.id_number(area, slot)
    birth = keys.birth_iso(day).replace("-", "")
    assert id_number == make_id_number(area, birth, slot % 1000)
    assert is_valid_id_number(id_number)
    assert keys.id_slot(id_number) == slot


@given(st.sampled_from(AREAS), st.integers(0, keys.USCC_BODY_SPACE - 1))
def test_uscc_matches_gb_32100_reference(area: str, slot: int) -> None:
    body, rest = "", slot
    for _ in range(8):
        rest, digit = divmod(rest, 31)
        body = USCC_CHARSET[digit] + body
    uscc = keys.uscc(area, slot)
    assert uscc == make_uscc("9", "1", area, body)
    assert is_valid_uscc(uscc)
    assert keys.uscc_slot(uscc) == slot


def test_birth_days_cover_1950_to_2005_over_a_prime_range() -> None:
    n = keys.BIRTH_DAYS
    assert all(n % p for p in range(2, int(n**0.5) + 1))
    assert keys.birth_iso(0) == "1950-01-01"
    assert keys.birth_iso(n - 1).startswith("2005-")


def test_id_slot_rejects_dates_outside_the_range() -> None:
    assert keys.id_slot("110105194912310021") is None
    assert keys.id_slot("110105199902300021") is None  # 30 February
