"""Masking rules: deterministic, type-preserving replacements for a field's value.

A field whose grade is one above the caller's clearance is shown masked (see
``decisions.py``); ``catalog.toml`` names the rule for each field. Every rule
keeps the value a string of the same kind, so a masked response still fits the
schema, and gives the same output for the same input, so two masked records of
one person still look alike. The rules follow the de-identification examples of
GB/T 35273-2020 (personal information security specification) and GB/T
37964-2019 (guide for de-identifying personal information):

============  ===========================================  ======================
rule          keeps                                        example
============  ===========================================  ======================
ID_NUMBER     first 6 (area code)                          ``110105************``
NAME          the first character (the surname)           ``张**``
PHONE         the first 3 and the last 4 digits            ``138****5678``
ADDRESS       province, city and district                  ``江苏省南京市玄武区***``
DATE          the year                                     ``1985-**-**``
HASH          nothing: a keyed pseudonym (HMAC-SHA256)     ``9f2c…`` (32 hex)
============  ===========================================  ======================

Every rule is idempotent: masking a value that is already masked leaves it as
it is (``mask(mask(v)) == mask(v)``). A gateway of gateways (the 国—省—市
cascade) applies its own policy to rows a lower gateway has already masked, and
the stricter decision must win without turning a mask into something else: a
masked phone ``138****5678`` stays ``138****5678``, it does not become
``***********``. ``*`` stands for a hidden character in every rule, so the rules
count it where they count what it hid (a digit of a phone number). For ``HASH``
a value that already has the shape of a pseudonym (32 lower-case hex
characters) is taken for one and kept: no field masked with ``HASH`` holds such
values in clear (credit-record ids and document numbers), and hashing a
pseudonym again would break the joins it exists for.

``HASH`` needs a secret shared by every deployment of the gateway (so the
pseudonym of one value is the same in every region and masked records can still
be joined) and kept from callers (so a pseudonym cannot be reversed by hashing
guesses). The secret is passed in, never read here: see ``resolve_mask_secret``.
No secret is ever a constant of the source: whatever is published can be recomputed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from gateway.core.errors import ConfigError

#: A mask rule: the clear value in, the masked value out.
MaskFunction = Callable[[Any], str]

logger = logging.getLogger("deltagate.policy")

#: Bytes of the secret a development gateway generates when none is configured.
GENERATED_SECRET_BYTES = 32

_FILL = "*"


def mask_id_number(value: Any) -> str:
    """Keep the first 6 characters (the issuing area code) and hide the other 12.

    GB/T 35273-2020 Annex A shows first 6 + last 4 as an example, but here that
    leaves too much: the last 4 are the sequence and the GB 11643 check
    character, and with the year a masked birth date keeps (and the gender, whose
    parity is the 17th character) only a few dozen birth dates give that check
    character, few enough to try one by one. With the area code alone a year
    still leaves about 180,000 candidates, and masked records are joined through
    the ``HASH`` pseudonym, not through a part of the number. A value of 6
    characters or fewer is hidden entirely.
    """
    text = str(value)
    if len(text) <= 6:
        return _FILL * len(text)
    return text[:6] + _FILL * (len(text) - 6)


def mask_name(value: Any) -> str:
    """Keep the first character (for a Chinese name, the surname)."""
    text = str(value)
    if len(text) <= 1:
        return _FILL * len(text)
    return text[0] + _FILL * (len(text) - 1)


def mask_phone(value: Any) -> str:
    """Keep the first 3 digits (the carrier prefix) and the last 4.

    Only digits are counted and replaced, so separators such as ``021-`` stay
    where they are. A number with 7 digits or fewer has all of them hidden. A
    ``*`` counts as the digit it hid, so a masked number masks to itself.
    """
    text = str(value)
    digits = sum(_is_digit_place(ch) for ch in text)
    if digits <= 7:
        return "".join(_FILL if _is_digit_place(ch) else ch for ch in text)
    out: list[str] = []
    seen = 0
    for ch in text:
        if _is_digit_place(ch):
            seen += 1
            out.append(ch if seen <= 3 or seen > digits - 4 else _FILL)
        else:
            out.append(ch)
    return "".join(out)


def _is_digit_place(ch: str) -> bool:
    return ch.isdigit() or ch == _FILL


# Chinese addresses start with the administrative divisions of GB/T 2260, largest
# first: province (省/自治区, or one of the four municipalities, 市), prefecture
# city (市/州/盟/地区; absent under a municipality), then the county-level
# division (区/县/县级市/旗). A division name holds no digits and none of the
# street-level words, which keeps a street such as "中山路1号小区" from being
# taken for a district.
_NOT_STREET = r"[^\d路街巷弄号*]"
_PROVINCE = re.compile(rf"{_NOT_STREET}{{2,7}}?(?:省|自治区|特别行政区|市)")
_CITY = re.compile(rf"{_NOT_STREET}{{1,9}}?(?:市|自治州|州|盟|地区)")
_DISTRICT = re.compile(rf"{_NOT_STREET}{{1,9}}?(?:区|县|市|旗)")


def address_divisions(text: str) -> str:
    """The province/city/district prefix of an address ('' if none is recognised)."""
    province = _PROVINCE.match(text)
    if province is None:
        return ""
    end = province.end()
    if not province.group().endswith("市"):
        city = _CITY.match(text, end)
        if city is None:
            return text[:end]
        end = city.end()
    district = _DISTRICT.match(text, end)
    if district is not None:
        end = district.end()
    return text[:end]


def mask_address(value: Any) -> str:
    """Keep province, city and district; replace the rest with ``***``.

    An address whose divisions cannot be recognised keeps nothing.
    """
    return address_divisions(str(value)) + _FILL * 3


_ISO_YEAR = re.compile(r"\d{4}(?=-)")


def mask_date(value: Any) -> str:
    """Keep the year of an ISO date: ``1985-06-15`` → ``1985-**-**``."""
    if isinstance(value, dt.date):
        return f"{value.year:04d}-**-**"
    year = _ISO_YEAR.match(str(value))
    return f"{year.group() if year else '****'}-**-**"


def keyed_pseudonym(value: Any, *, secret: bytes) -> str:
    """HMAC-SHA256 of the value under the secret, as 32 hex characters (128 bits).

    A keyed hash, not a plain one: without the key, a pseudonym of an ID number
    (a small, structured space) could be reversed by hashing every candidate.
    A value that is already a pseudonym (see :func:`is_pseudonym`) is returned
    as it is, so a record masked by a lower gateway keeps the pseudonym every
    region gives it.
    """
    if is_pseudonym(value):
        return str(value)
    digest = hmac.new(secret, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:32]


_PSEUDONYM = re.compile(r"[0-9a-f]{32}")


def is_pseudonym(value: Any) -> bool:
    """Whether ``value`` has the shape ``keyed_pseudonym`` gives: 32 lower-case hex characters."""
    return isinstance(value, str) and _PSEUDONYM.fullmatch(value) is not None


#: The rules that need no secret, by the name ``catalog.toml`` uses.
PLAIN_RULES: Mapping[str, MaskFunction] = {
    "ID_NUMBER": mask_id_number,
    "NAME": mask_name,
    "PHONE": mask_phone,
    "ADDRESS": mask_address,
    "DATE": mask_date,
}

#: Every rule name a catalog may use.
RULE_NAMES: frozenset[str] = frozenset({*PLAIN_RULES, "HASH"})


def build_rules(secret: bytes) -> dict[str, MaskFunction]:
    """The rule registry, with ``HASH`` bound to the given secret."""
    if not secret:
        raise ConfigError("the mask secret must not be empty")

    def hash_rule(value: Any) -> str:
        return keyed_pseudonym(value, secret=secret)

    return {**PLAIN_RULES, "HASH": hash_rule}


def resolve_mask_secret(configured: str | bytes | None, *, dev_mode: bool) -> bytes:
    """The secret of ``HASH`` pseudonyms and page cursors: the configured one, else a random one.

    Only development mode may go without one, and then gets a secret generated
    for this call (a gateway calls once, as it starts): its pseudonyms and
    cursors change at every start. A fixed default would be in the source for
    anyone to read, letting any caller recompute pseudonyms and open cursors. A
    production gateway without ``DELTAGATE_MASK_SECRET`` refuses to start.
    """
    if configured:
        return configured.encode("utf-8") if isinstance(configured, str) else configured
    if dev_mode:
        logger.warning(
            "no DELTAGATE_MASK_SECRET: generated one for this run; "
            "pseudonyms and cursors will not survive a restart"
        )
        return secrets.token_bytes(GENERATED_SECRET_BYTES)
    raise ConfigError("DELTAGATE_MASK_SECRET must be set outside development mode")
