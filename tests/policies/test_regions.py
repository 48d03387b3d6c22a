"""Policy and the region registry: owners are registry codes, `*` covers a region added later."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.core.regions import Region, shipped_regions
from policies import Decision, PolicyEngine
from policies.decisions import Reason
from tests.policies.conftest import MASK_SECRET, append, caller

WITH_NANJING = shipped_regions().with_region(Region(code="NJ", name="南京", prefixes=("3201",)))


def test_grants_and_the_negative_list_written_with_star_cover_a_fifth_region() -> None:
    from policies import SHIPPED_POLICY_DIR

    engine = PolicyEngine.from_directory(
        SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True, regions=WITH_NANJING
    )
    officer = engine.begin(caller("JS", "joint_handling_officer"), "JH-HUKOU-MIGRATION")
    assert officer.decide("NaturalPerson.phone", "NJ").decision is Decision.CLEAR
    ethnicity = officer.decide("NaturalPerson.ethnicity", "NJ")
    assert (ethnicity.decision, ethnicity.reason) == (Decision.WITHHELD, Reason.NEGATIVE_LIST)
    # A caller of the region itself is not a caller from another region.
    own = engine.begin(caller("NJ", "joint_handling_officer"), "JH-HUKOU-MIGRATION")
    assert own.decide("NaturalPerson.ethnicity", "NJ").decision is Decision.CLEAR


def test_an_owner_outside_the_registry_is_withheld() -> None:
    from policies import SHIPPED_POLICY_DIR

    engine = PolicyEngine.from_directory(SHIPPED_POLICY_DIR, mask_secret=MASK_SECRET, strict=True)
    officer = engine.begin(caller("JS", "joint_handling_officer"), "JH-HUKOU-MIGRATION")
    assert officer.decide("NaturalPerson.name", "NJ").reason is Reason.UNKNOWN_OWNER


def test_a_policy_line_may_name_a_configured_region_only(policy_dir: Path) -> None:
    append(policy_dir / "policy.csv", "p, one_stop_app, NJ, *, NaturalPerson.phone, L3, allow\n")
    with pytest.raises(ConfigError, match="owner must be one of"):
        PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, strict=True)
    engine = PolicyEngine.from_directory(
        policy_dir, mask_secret=MASK_SECRET, strict=True, regions=WITH_NANJING
    )
    counter = engine.begin(caller("SH", "one_stop_app"), "OS-ENTERPRISE-OPENING")
    assert counter.decide("NaturalPerson.phone", "NJ").decision is Decision.CLEAR


def test_a_negative_list_line_names_a_region_or_star(policy_dir: Path) -> None:
    append(policy_dir / "policy.csv", "p2, XX, NaturalPerson.phone\n")
    with pytest.raises(ConfigError, match="one region or"):
        PolicyEngine.from_directory(policy_dir, mask_secret=MASK_SECRET, strict=True)
