"""The region registry: the shipped four, routing by longest prefix, and what it refuses."""

from __future__ import annotations

import pytest

from gateway.core.errors import ConfigError
from gateway.core.regions import Region, RegionRegistry, shipped_regions

NANJING = Region(code="NJ", name="南京", prefixes=("3201",))


def test_the_shipped_registry_is_the_four_regions_of_the_delta_in_merge_order() -> None:
    regions = shipped_regions()
    assert regions.codes == ("SH", "JS", "ZJ", "AH")
    assert [(r.name, r.prefixes) for r in regions] == [
        ("上海", ("31",)), ("江苏", ("32",)), ("浙江", ("33",)), ("安徽", ("34",)),
    ]  # fmt: skip


def test_a_city_prefix_wins_over_its_province() -> None:
    regions = shipped_regions().with_region(NANJING)
    assert regions.id_number_region("320102198805121231") == "NJ"
    assert regions.id_number_region("320202198805121231") == "JS"
    assert regions.uscc_region("913201001234567890") == "NJ"
    assert regions.uscc_region("913202001234567890") == "JS"
    assert regions.id_number_region("110101198805121231") is None


def test_a_region_added_by_configuration_can_replace_a_shipped_one() -> None:
    renamed = shipped_regions().with_region(Region(code="SH", name="上海市", prefixes=("31",)))
    assert renamed.codes == ("SH", "JS", "ZJ", "AH")
    assert renamed.get("SH") == Region(code="SH", name="上海市", prefixes=("31",))


@pytest.mark.parametrize(
    ("code", "name", "prefixes", "message"),
    [
        ("nj", "南京", ("3201",), "upper-case"),
        ("NATIONAL", "全国", ("10",), "reserved"),
        ("NJ", " ", ("3201",), "name"),
        ("NJ", "南京", (), "at least one"),
        ("NJ", "南京", ("32A1",), "2 to 6 digits"),
        ("NJ", "南京", ("3201001",), "2 to 6 digits"),
    ],
)
def test_a_bad_region_is_a_config_error(
    code: str, name: str, prefixes: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Region(code=code, name=name, prefixes=prefixes)


def test_two_regions_cannot_share_a_code_or_a_prefix() -> None:
    with pytest.raises(ConfigError, match="defined twice"):
        RegionRegistry((NANJING, NANJING))
    with pytest.raises(ConfigError, match="belongs to both"):
        shipped_regions().with_region(Region(code="SU", name="苏州", prefixes=("32",)))
