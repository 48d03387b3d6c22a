"""Field builders: turn 64 random bits into names, addresses, phones, credit details.

Each builder takes a random integer and peels mixed-radix digits off it
(``r % n``, ``r // n``), which is cheaper than drawing from a ``random.Random``
and keeps each record a pure function of its bits.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gateway.synthetic.divisions import Division
from gateway.synthetic.hashing import Weighted
from gateway.synthetic.names import (
    AUTHORITY_SHORT,
    CREDIT_AUTHORITIES,
    CREDIT_TITLES,
    GIVEN_NAME_CHARS,
    PHONE_PREFIXES,
    SURNAMES,
)

_SURNAMES = Weighted(SURNAMES)
_GIVEN = GIVEN_NAME_CHARS
_NG = len(_GIVEN)

#: Ordinal of the last day any event may fall on.
LAST_DAY = dt.date(2024, 12, 31).toordinal()
#: Credit records are decided from 2015 on (the 双公示 system dates from then).
FIRST_DECISION = dt.date(2015, 1, 1).toordinal()
#: Eighteen years, in days: residence, insurance and credit need an adult.
ADULT = 6575


def iso(ordinal: int) -> str:
    """``YYYY-MM-DD`` for a proleptic Gregorian ordinal."""
    offset = ordinal - _ISO_FROM
    if 0 <= offset < len(_ISO_DAYS):
        return _ISO_DAYS[offset]
    return dt.date.fromordinal(ordinal).isoformat()


# Every day a record can fall on (1950 to 2035), formatted once: cheaper than per row.
_ISO_FROM = dt.date(1950, 1, 1).toordinal()
_ISO_DAYS = tuple(
    dt.date.fromordinal(o).isoformat()
    for o in range(_ISO_FROM, dt.date(2035, 12, 31).toordinal() + 1)
)


def day_between(first: int, last: int, r: int) -> int:
    """An ordinal in ``[first, last]`` (``last`` if the range is empty)."""
    if first >= last:
        return last
    return first + r % (last - first + 1)


def wan_yuan(yuan: int) -> Decimal:
    """Whole yuan as 万元 with four places: the unified money convention."""
    return Decimal(f"{yuan // 10000}.{yuan % 10000:04d}")


def person_name(r: int) -> str:
    """A surname (by frequency) and one or two given-name characters."""
    surname = _SURNAMES.pick(r % _SURNAMES.total)
    r //= _SURNAMES.total
    first, r = _GIVEN[r % _NG], r // _NG
    if r % 10 < 3:
        return surname + first
    return surname + first + _GIVEN[(r // 10) % _NG]


def phone(r: int) -> str:
    """An 11-digit mobile number."""
    n = len(PHONE_PREFIXES)
    return f"{PHONE_PREFIXES[r % n]}{(r // n) % 100_000_000:08d}"


def street_address(division: Division, streets: tuple[str, ...], r: int) -> str:
    """An address that starts with the division's full name.

    For example 江苏省南京市玄武区中山路123号4幢502室.
    """
    street, r = streets[r % len(streets)], r // len(streets)
    number, r = 1 + r % 999, r // 999
    floor, r = 1 + r % 28, r // 28
    room = f"{floor}{1 + r % 6:02d}"
    r //= 6
    if r % 3 == 0:
        return f"{division.full_name}{street}{number}号{room}室"
    return f"{division.full_name}{street}{number}号{1 + (r // 3) % 30}幢{room}室"


def _decision_place(division: Division, r: int) -> str:
    """City-level or district-level authority (a municipality's city is the province)."""
    if r % 5 < 2:
        return division.city_name
    return division.city_name + division.district


def credit_details(
    kind: str, subject_type: str, division: Division, abbreviation: str, decided: int, r: int
) -> tuple[str, str, str, str | None, Decimal | None, str]:
    """title, document number, authority, valid-until, amount and detail of one record.

    Only penalties carry an amount. Licences are valid for five years;
    penalties are published for one or three years (公示期); dishonest-executee
    entries and commendations often have no end date.
    """
    titles = CREDIT_TITLES[kind][subject_type]
    title, r = titles[r % len(titles)], r // len(titles)
    suffixes = CREDIT_AUTHORITIES[kind]
    suffix, r = suffixes[r % len(suffixes)], r // len(suffixes)
    place, r = _decision_place(division, r), r // 5
    year = dt.date.fromordinal(decided).year
    serial, r = 1 + r % 9999, r // 9999
    short = AUTHORITY_SHORT[suffix]
    amount: Decimal | None = None
    valid_until: int | None
    if kind == "ADMIN_PENALTY":
        authority = place + suffix
        number = f"{abbreviation}{short}罚〔{year}〕{serial}号"
        top = 2_000_000 if subject_type == "LEGAL_PERSON" else 20_000
        yuan = max(50, (r % top) // 50 * 50)
        r //= top
        amount = wan_yuan(yuan)
        valid_until = decided + (365 if r % 2 else 1095)
        detail = f"依据相关法律法规，决定给予警告，并处罚款{yuan}元"
    elif kind == "ADMIN_LICENSE":
        authority = place + suffix
        number = f"{abbreviation}{short}许〔{year}〕{serial:05d}号"
        valid_until = decided + 1826
        detail = f"准予{title}许可，有效期五年"
    elif kind == "DISHONEST_EXECUTEE":
        if r % 10 < 3:
            # A municipality has several intermediate courts; the first will do.
            court_name = "中级人民法院" if division.city else "第一中级人民法院"
            authority = division.city_name + court_name
            court = division.code[2:4]
        else:
            authority = division.city_name + division.district + suffix
            court = division.code[2:6]
        r //= 10
        number = f"（{year}）{abbreviation}{court}执{serial}号"
        valid_until = decided + 1095 if r % 10 < 4 else None
        yuan = 1000 + (r // 10) % 500_000
        detail = f"生效法律文书确定的义务：给付{yuan}元；被执行人的履行情况：全部未履行"
    else:
        authority = place + suffix
        number = f"{abbreviation}{short}〔{year}〕{serial}号"
        valid_until = decided + 730 if r % 2 else None
        detail = f"授予“{title}”称号"
    until = None if valid_until is None else iso(valid_until)
    return title, number, authority, until, amount, detail
