"""Routing by the key's kind: a key's home region comes from the argument it was given in.

A USCC may be made of digits only (GB 32100 allows it: ``91`` for an enterprise
registered by 工商, an area code, a numeric organisation code), and then looks
like a citizen ID number. Judged by its look, it would be routed as an ID
number (to no region for ``91…``, to the wrong one for ``31``/``32``
authorities) and answered ``null`` without asking its region.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.core.identifiers import is_valid_id_number, is_valid_uscc, key_region, uscc_check_char
from gateway.core.regions import shipped_regions
from gateway.synthetic import region_dsn
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

#: The shipped regions (SH, JS, ZJ, AH), which the demo data is made for.
SHIPPED = shipped_regions()

PORTAL = token("AH", "public_portal", app="portal-ah")
#: A valid USCC of an SH enterprise made of digits only.
DIGITS_USCC = "913101011000000249"
NAME = "上海数字代码测试有限公司"


@pytest.fixture
async def digit_company(seeded: Seeded) -> AsyncIterator[str]:
    """An SH enterprise whose USCC is all digits, in SH's own table for the test's length."""
    connection = await asyncpg.connect(region_dsn(seeded.dsn, "SH"))
    try:
        await connection.execute(
            "INSERT INTO fr_jbxx (tyshxydm, qymc, qylx, djzt, zczb, clrq, djjg, zs, jyfw,"
            " fddbr_sfzh) SELECT $1, $2, qylx, djzt, zczb, clrq, djjg, zs, jyfw, fddbr_sfzh"
            " FROM fr_jbxx ORDER BY tyshxydm LIMIT 1",
            DIGITS_USCC,
            NAME,
        )
        yield DIGITS_USCC
    finally:
        await connection.execute("DELETE FROM fr_jbxx WHERE tyshxydm = $1", DIGITS_USCC)
        await connection.close()


def test_the_region_of_a_key_comes_from_its_kind_not_its_look() -> None:
    assert is_valid_uscc(DIGITS_USCC)
    assert key_region("uscc", DIGITS_USCC, SHIPPED) == "SH"
    # A law firm's USCC (authority 3, category 1) registered in Zhejiang: its first two
    # digits would name Shanghai if it were read as an ID number.
    first17 = "31330100" + "123456789"
    law_firm = first17 + uscc_check_char(first17)
    assert is_valid_uscc(law_firm)
    assert key_region("uscc", law_firm, SHIPPED) == "ZJ"
    assert key_region("id_number", law_firm, SHIPPED) == "SH"
    with pytest.raises(ValueError, match="not a key kind"):
        key_region("name", DIGITS_USCC, SHIPPED)


@pytest.mark.parametrize(
    "selection",
    ["uscc name region", "uscc name @include(if: true) region"],
    ids=["planned", "per-field"],
)
async def test_an_all_digit_uscc_is_read_from_its_home_region(
    seeded: Seeded, digit_company: str, selection: str
) -> None:

    assert not is_valid_id_number(digit_company)
    query = (
        f'query {{ one: legalPerson(uscc: "{digit_company}") {{ {selection} }}'
        f' many: legalPersons(usccs: ["{digit_company}"]) {{ {selection} }}'
        f' found: searchLegalPersons(name: "{NAME}") {{ edges {{ node {{ uscc }} }} }} }}'
    )
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(query, token=PORTAL)
    assert "errors" not in body, body["errors"]
    expected = {"uscc": digit_company, "name": NAME, "region": "SH"}
    assert body["data"]["found"]["edges"] == [{"node": {"uscc": digit_company}}]
    assert body["data"]["one"] == expected
    assert body["data"]["many"] == [expected]
