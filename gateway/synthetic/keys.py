"""Unique identifiers from record indexes: citizen ID numbers and USCCs.

An ID number (GB 11643) is area code + birth date + three-digit sequence +
check character. Within one region the (birth date, sequence) pair alone is
made unique: the index is sent through a permutation of
``range(BIRTH_DAYS * 1000)`` and split into a day and a sequence, so no two
persons of a region can share an ID whatever area code they draw, and a given
ID leads back to its index. ``BIRTH_DAYS`` is prime so that any multiplier not
divisible by 2, 5 or it permutes the space.

A USCC (GB 32100) carries an eight-character organisation code body; the
enterprise index goes through a permutation of ``range(31**8)`` and is written
in the USCC character set, so bodies are unique within a region and the
area code in the USCC keeps regions apart.

The check characters are computed here from partial sums rather than by
``gateway.core.identifiers`` so that building a record costs a few table look-ups;
the tests hold both to the same answers.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from gateway.core.identifiers import USCC_CHARSET

#: Birth dates are drawn from 1950-01-01 onwards, over a prime number of days (to 2005).
BIRTH_START = dt.date(1950, 1, 1).toordinal()
BIRTH_DAYS = 20443
#: Largest number of persons one region can hold with unique ID numbers.
MAX_PERSONS = BIRTH_DAYS * 1000

# GB 11643-1999 §7: weight of position i (1-based from the left) is 2^(18-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
USCC_BODY_SPACE = 31**8


def _weighted_sum(digits: str, offset: int) -> int:
    return sum(int(d) * _ID_WEIGHTS[offset + n] for n, d in enumerate(digits))


@cache
def _birth_table() -> tuple[tuple[str, str, int], ...]:
    """Per birth-day offset: ISO date, ``YYYYMMDD`` and its share of the check sum."""
    table = []
    for offset in range(BIRTH_DAYS):
        day = dt.date.fromordinal(BIRTH_START + offset)
        compact = day.strftime("%Y%m%d")
        table.append((day.isoformat(), compact, _weighted_sum(compact, 6)))
    return tuple(table)


@cache
def _sequence_table() -> tuple[tuple[str, int], ...]:
    return tuple((f"{s:03d}", _weighted_sum(f"{s:03d}", 14)) for s in range(1000))


@cache
def area_share(area: str) -> int:
    """The area code's share of an ID number's check sum."""
    return _weighted_sum(area, 0)


def id_number(area: str, slot: int) -> tuple[str, int]:
    """The ID number for ``slot`` in ``range(MAX_PERSONS)`` and the birth-day offset.

    The sequence's last digit is the slot's last digit: odd for men, even for
    women (GB 11643 §6.3), so gender follows from the slot.
    """
    day, sequence = divmod(slot, 1000)
    _, compact, birth_share = _birth_table()[day]
    digits, sequence_share = _sequence_table()[sequence]
    check = _ID_CHECK[(area_share(area) + birth_share + sequence_share) % 11]
    return f"{area}{compact}{digits}{check}", day


def birth_iso(day: int) -> str:
    """The ISO birth date for a birth-day offset."""
    return _birth_table()[day][0]


def id_slot(value: str) -> int | None:
    """The slot an ID number was built from, or None if its date is out of range."""
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        sequence = int(value[14:17])
    except ValueError:
        return None
    day = born.toordinal() - BIRTH_START
    if not 0 <= day < BIRTH_DAYS:
        return None
    return day * 1000 + sequence


def uscc(area: str, slot: int) -> str:
    """The USCC of an enterprise (registered by 工商, category 企业) for a body slot.

    The body is written most significant character first, two characters per
    table look-up; each look-up also carries the pair's share of both check sums.
    """
    rest, low = divmod(slot, 961)
    rest, mid_low = divmod(rest, 961)
    high, mid_high = divmod(rest, 961)
    t0, t1, t2, t3 = _pair_tables()
    a, b, c, d = t0[high], t1[mid_high], t2[mid_low], t3[low]
    org_value = 11 - (a[1] + b[1] + c[1] + d[1]) % 11
    org_check = "X" if org_value == 10 else "0" if org_value == 11 else str(org_value)
    total = _uscc_prefix_share(area) + a[2] + b[2] + c[2] + d[2]
    total += _USCC_VALUE[org_check] * _USCC_WEIGHTS[16]
    check = USCC_CHARSET[(31 - total % 31) % 31]
    return f"91{area}{a[0]}{b[0]}{c[0]}{d[0]}{org_check}{check}"


# GB 32100-2015: character values are positions in USCC_CHARSET, weights 3^(i-1) mod 31.
_USCC_VALUE = {char: value for value, char in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# GB 11714-1997: organisation-code weights; letters count as 10 for A, 11 for B, ...
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_value(char: str) -> int:
    return ord(char) - 55 if char.isalpha() else int(char)


@cache
def _uscc_prefix_share(area: str) -> int:
    return sum(_USCC_VALUE[c] * w for c, w in zip(f"91{area}", _USCC_WEIGHTS, strict=False))


@cache
def _pair_tables() -> tuple[tuple[tuple[str, int, int], ...], ...]:
    """For each of the body's four character pairs: text, organisation and USCC sum shares."""
    tables = []
    for pair in range(4):
        first = 2 * pair
        table = []
        for value in range(961):
            chars = USCC_CHARSET[value // 31] + USCC_CHARSET[value % 31]
            org = sum(_org_value(c) * _ORG_WEIGHTS[first + n] for n, c in enumerate(chars))
            full = sum(_USCC_VALUE[c] * _USCC_WEIGHTS[8 + first + n] for n, c in enumerate(chars))
            table.append((chars, org, full))
        tables.append(tuple(table))
    return tuple(tables)


def uscc_slot(value: str) -> int | None:
    """The body slot a USCC was built from (chars 9-16), or None if malformed."""
    slot = 0
    for char in value[8:16]:
        digit = USCC_CHARSET.find(char)
        if digit < 0:
            return None
        slot = slot * 31 + digit
    return slot
