"""Citizen ID numbers (GB 11643-1999) and unified social credit codes (GB 32100-2015).

Both are 18 characters whose last character is a check character over the
first 17, and both carry an administrative-division code (GB/T 2260) whose
longest prefix in the region registry names the record's home region: the
base record is read from there only (一数一源).
"""

from __future__ import annotations

import re

from gateway.core.errors import InvalidId
from gateway.core.regions import RegionRegistry
from gateway.core.types import RegionCode

# GB 11643-1999 §7: weights W_i = 2^(i-1) mod 11 for positions 18..2; the check
# value is (12 - sum mod 11) mod 11, written "X" when it is 10.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")

# GB 32100-2015: the 31 characters allowed (no I, O, S, V, Z); weights are
# 3^(i-1) mod 31 and the check value is 31 - (sum mod 31), with 31 written "0".
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_USCC_RE = re.compile(r"^[0-9A-HJ-NP-RTUW-Y]{2}\d{6}[0-9A-HJ-NP-RTUW-Y]{10}$")

# GB 11714-1997: the organisation code (chars 9-17 of a USCC) has its own
# mod-11 check character, "X" for 10 and "0" for 11.
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_VALUE = {c: (ord(c) - 55 if c.isalpha() else int(c)) for c in USCC_CHARSET}


def id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of an ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def make_id_number(area: str, birth: str, sequence: int) -> str:
    """An ID number from a 6-digit area code, ``YYYYMMDD`` and a 0-999 sequence.

    The sequence's last digit is odd for men and even for women (GB 11643 §6.3).
    """
    first17 = f"{area}{birth}{sequence:03d}"
    return first17 + id_check_char(first17)


def is_valid_id_number(value: str) -> bool:
    """Format, birth-date plausibility and check character of an ID number."""
    if not _ID_RE.match(value):
        return False
    month, day = int(value[10:12]), int(value[12:14])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return False
    return id_check_char(value[:17]) == value[17]


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a USCC."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character of an 8-character organisation code body."""
    total = sum(_ORG_VALUE[c] * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    value = 11 - total % 11
    return "X" if value == 10 else "0" if value == 11 else str(value)


def make_uscc(authority: str, category: str, area: str, org_body: str) -> str:
    """A USCC from its registration authority and category characters, a 6-digit
    area code and an 8-character organisation code body."""
    org = org_body + org_code_check_char(org_body)
    first17 = f"{authority}{category}{area}{org}"
    return first17 + uscc_check_char(first17)


def is_valid_uscc(value: str) -> bool:
    """Format and check character of a unified social credit code."""
    if not _USCC_RE.match(value):
        return False
    return uscc_check_char(value[:17]) == value[17]


def id_number_region(value: str, regions: RegionRegistry) -> RegionCode | None:
    """The home region of an ID number (first 6 digits), or None outside the registry."""
    return regions.id_number_region(value)


def uscc_region(value: str, regions: RegionRegistry) -> RegionCode | None:
    """The home region of a USCC (its admin-division code is chars 3-8), or None."""
    return regions.uscc_region(value)


#: The unified key fields, each with where its home region is written.
_HOME_REGION = {"id_number": id_number_region, "uscc": uscc_region}


def key_region(kind: str, value: str, regions: RegionRegistry) -> RegionCode | None:
    """The home region of a key of a known kind: ``id_number`` or ``uscc``.

    The kind comes from where the key was given (the argument's or field's
    type), never from the key's look: a USCC may be all digits (e.g.
    ``913101011000000249``, SH) and would read as an ID number from outside
    the delta, or, for authority codes 3x, as one from inside it. The region
    is the one whose longest prefix starts the key's admin-division code.

    ::

        key_region("uscc", "913101011000000249", shipped_regions())  # 'SH'
    """
    try:
        region_of = _HOME_REGION[kind]
    except KeyError:
        raise ValueError(f"{kind!r} is not a key kind with a home region") from None
    return region_of(value, regions)


def require_id_number(value: str, argument: str = "idNumber") -> str:
    """Normalise (upper-case ``x``) and validate an ID number, or raise ``InvalidId``."""
    normalised = value.strip().upper()
    if not is_valid_id_number(normalised):
        raise InvalidId(f"{argument} is not a valid citizen ID number", argument=argument)
    return normalised


def require_uscc(value: str, argument: str = "uscc") -> str:
    """Normalise and validate a USCC, or raise ``InvalidId``."""
    normalised = value.strip().upper()
    if not is_valid_uscc(normalised):
        raise InvalidId(f"{argument} is not a valid unified social credit code", argument=argument)
    return normalised
