"""The synthetic delta: deterministic, valid identifiers, the home-region and cross-region rules."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from decimal import Decimal
from itertools import islice

import pytest

from gateway.core.entities import CREDIT_KINDS, DATE_FIELDS, ENTITY_FIELDS, MONEY_FIELDS
from gateway.core.identifiers import (
    id_number_region,
    is_valid_id_number,
    is_valid_uscc,
    key_region,
    uscc_region,
)
from gateway.core.regions import shipped_regions
from gateway.core.types import DELTA_REGIONS, Row
from gateway.synthetic import Dataset
from gateway.synthetic.divisions import DIVISIONS

#: The shipped regions (SH, JS, ZJ, AH), which the demo data is made for.
SHIPPED = shipped_regions()

ENTITY_STREAMS = {
    "person": "persons",
    "residence": "residences",
    "social_insurance": "social_insurance",
    "enterprise": "enterprises",
    "credit_record": "credit_records",
}
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PHONE = re.compile(r"^1[35789]\d{9}$")
FULL_NAMES = {d.code: d.full_name for divisions in DIVISIONS.values() for d in divisions}


def every_row(data: Dataset, entity: str, region: str) -> list[Row]:
    return list(getattr(data, ENTITY_STREAMS[entity])(region))


@pytest.fixture(scope="module")
def big() -> Dataset:
    """Large enough for proportions to settle."""
    return Dataset(persons_per_region=4000, seed=11)


def test_same_arguments_give_identical_rows(dataset: Dataset) -> None:
    again = Dataset(dataset.persons_per_region, dataset.seed)
    for entity in ENTITY_STREAMS:
        for region in DELTA_REGIONS:
            assert every_row(again, entity, region) == every_row(dataset, entity, region)


def test_another_seed_gives_other_people(dataset: Dataset) -> None:
    other = Dataset(dataset.persons_per_region, dataset.seed + 1)
    ours = {row["id_number"] for row in dataset.persons("SH")}
    theirs = {row["id_number"] for row in other.persons("SH")}
    assert len(ours & theirs) < len(ours) // 10


def test_random_access_matches_the_streams(dataset: Dataset) -> None:
    for region in DELTA_REGIONS:
        persons = every_row(dataset, "person", region)
        assert [dataset.person(region, i) for i in range(len(persons))] == persons
        enterprises = every_row(dataset, "enterprise", region)
        assert [dataset.enterprise(region, i) for i in range(len(enterprises))] == enterprises
        credits = every_row(dataset, "credit_record", region)
        assert [dataset.credit_record(region, i) for i in range(len(credits))] == credits


def test_counts_follow_the_persons_per_region(dataset: Dataset) -> None:
    n = dataset.persons_per_region
    for region in DELTA_REGIONS:
        assert dataset.person_count(region) == len(every_row(dataset, "person", region)) == n
        assert dataset.enterprise_count(region) == len(every_row(dataset, "enterprise", region))
        assert dataset.enterprise_count(region) == n // 4
        assert dataset.credit_count(region) == len(every_row(dataset, "credit_record", region))
        assert dataset.credit_count(region) == n // 2


def test_rows_have_exactly_the_unified_fields_and_conventions(dataset: Dataset) -> None:
    for entity in ENTITY_STREAMS:
        for region in DELTA_REGIONS:
            for row in every_row(dataset, entity, region):
                assert tuple(row) == ENTITY_FIELDS[entity]
                for field, value in row.items():
                    if value is None:
                        assert field in {"valid_until", "amount"}
                    elif field in DATE_FIELDS:
                        assert ISO.match(value), (field, value)
                    elif field in MONEY_FIELDS:
                        assert isinstance(value, Decimal)
                        assert value.as_tuple().exponent == -4
                        assert value > 0
                    else:
                        assert isinstance(value, str), (field, value)
                        assert value, field
                if "region" in row:
                    assert row["region"] == region


def test_id_numbers_are_valid_unique_and_name_the_home_region(dataset: Dataset) -> None:
    seen: set[str] = set()
    for region in DELTA_REGIONS:
        for person in dataset.persons(region):
            id_number = person["id_number"]
            assert is_valid_id_number(id_number)
            assert id_number_region(id_number, SHIPPED) == region == person["household_region"]
            assert id_number not in seen
            seen.add(id_number)
            area = id_number[:6]
            assert area in {d.code for d in DIVISIONS[region]}
            assert person["household_address"].startswith(FULL_NAMES[area])
            birth = person["birth_date"]
            assert id_number[6:14] == birth.replace("-", "")
            assert "1950-01-01" <= birth <= "2005-12-31"
            # GB 11643 §6.3: the sequence's last digit is odd for men.
            assert person["gender"] == ("MALE" if int(id_number[16]) % 2 else "FEMALE")
            assert PHONE.match(person["phone"])


def test_usccs_are_valid_unique_and_in_their_region(dataset: Dataset) -> None:
    seen: set[str] = set()
    for region in DELTA_REGIONS:
        for enterprise in dataset.enterprises(region):
            uscc = enterprise["uscc"]
            assert is_valid_uscc(uscc)
            assert uscc.startswith("91")
            assert uscc_region(uscc, SHIPPED) == region
            assert uscc not in seen
            seen.add(uscc)
            assert enterprise["address"].startswith(FULL_NAMES[uscc[2:8]])
            assert Decimal(10) <= enterprise["registered_capital"] <= Decimal(50000)
            assert dataset.locate_person(enterprise["legal_rep_id"]) is not None


def test_addresses_start_with_province_city_and_district(dataset: Dataset) -> None:
    shanghai = dataset.person("SH", 0)["household_address"]
    assert re.match(r"^上海市[^市]+区", shanghai)
    jiangsu = dataset.person("JS", 0)["household_address"]
    assert re.match(r"^江苏省[^省]+市[^市]+[区市县]", jiangsu)
    for region in DELTA_REGIONS:
        for row in dataset.residences(region):
            assert any(row["address"].startswith(d.full_name) for d in DIVISIONS[region])


def test_keys_locate_their_records_and_strangers_are_not_found(dataset: Dataset) -> None:
    for region in DELTA_REGIONS:
        for index in (0, 1, dataset.person_count(region) - 1):
            assert dataset.locate_person(dataset.person_id(region, index)) == (region, index)
        for index in (0, dataset.enterprise_count(region) - 1):
            assert dataset.locate_enterprise(dataset.uscc(region, index)) == (region, index)
    assert dataset.locate_person("11010519491231002X") is None
    assert dataset.locate_person("360426199101010071") is None
    assert dataset.locate_enterprise("91350100M000100Y43") is None
    other = Dataset(dataset.persons_per_region, dataset.seed + 1)
    assert dataset.locate_person(other.person_id("SH", 3)) is None


def test_residence_and_insurance_rows_are_kept_by_the_region_that_registered_them(
    dataset: Dataset,
) -> None:

    for entity, of in (("residence", "residences_of"), ("social_insurance", "social_insurance_of")):
        by_person: dict[str, list[Row]] = defaultdict(list)
        for region in DELTA_REGIONS:
            for row in every_row(dataset, entity, region):
                assert row["region"] == region
                by_person[row["person_id"]].append(row)
        for region in DELTA_REGIONS:
            for person in dataset.persons(region):
                expected = by_person.pop(person["id_number"], [])
                assert getattr(dataset, of)(person["id_number"]) == expected
        assert not by_person, "rows for persons that do not exist"


def test_about_a_fifth_of_persons_have_records_in_another_region(big: Dataset) -> None:
    for region in DELTA_REGIONS:
        elsewhere = 0
        home_insured = 0
        for index in range(big.person_count(region)):
            id_number = big.person_id(region, index)
            regions = {r["region"] for r in big.residences_of(id_number)}
            insured = {r["region"] for r in big.social_insurance_of(id_number)}
            elsewhere += bool((regions | insured) - {region})
            home_insured += region in insured
        share = elsewhere / big.person_count(region)
        assert 0.16 <= share <= 0.24, (region, share)
        assert home_insured / big.person_count(region) > 0.8


def test_about_a_quarter_of_enterprises_are_represented_from_another_region(big: Dataset) -> None:
    for region in DELTA_REGIONS:
        rows = list(big.enterprises(region))
        other = sum(id_number_region(row["legal_rep_id"], SHIPPED) != region for row in rows)
        assert 0.20 <= other / len(rows) <= 0.30, (region, other / len(rows))


def test_enterprises_of_a_person_are_those_they_represent(dataset: Dataset) -> None:
    represented: dict[str, list[Row]] = defaultdict(list)
    for region in DELTA_REGIONS:
        for row in dataset.enterprises(region):
            represented[row["legal_rep_id"]].append(row)
    for region in DELTA_REGIONS:
        for person in dataset.persons(region):
            expected = represented.get(person["id_number"], [])
            assert dataset.enterprises_of(person["id_number"]) == expected
    assert max(len(rows) for rows in represented.values()) >= 3


def test_credit_records_of_a_subject_are_every_record_about_it(dataset: Dataset) -> None:
    about: dict[str, list[Row]] = defaultdict(list)
    for region in DELTA_REGIONS:
        for row in dataset.credit_records(region):
            about[row["subject_id"]].append(row)
    subjects = [p["id_number"] for r in DELTA_REGIONS for p in dataset.persons(r)]
    subjects += [e["uscc"] for r in DELTA_REGIONS for e in dataset.enterprises(r)]
    for subject in subjects:
        assert dataset.credit_records_of(subject) == about.pop(subject, [])
    assert not about, "records about subjects that do not exist"


def test_credit_records_follow_their_conventions(big: Dataset) -> None:
    ids: set[str] = set()
    for region in DELTA_REGIONS:
        rows = list(big.credit_records(region))
        kinds = Counter(row["kind"] for row in rows)
        assert set(kinds) == set(CREDIT_KINDS)
        same_region = 0
        for row in rows:
            assert re.fullmatch(rf"{region}-CR-\d{{8}}", row["id"])
            assert row["id"] not in ids
            ids.add(row["id"])
            assert (row["amount"] is not None) == (row["kind"] == "ADMIN_PENALTY")
            subject = row["subject_id"]
            if row["subject_type"] == "NATURAL_PERSON":
                assert big.locate_person(subject) is not None
            else:
                assert big.locate_enterprise(subject) is not None
            kind = "id_number" if row["subject_type"] == "NATURAL_PERSON" else "uscc"
            same_region += key_region(kind, subject, SHIPPED) == region
            if row["valid_until"] is not None:
                assert row["valid_until"] > row["decided_on"]
            assert "2015-01-01" <= row["decided_on"] <= "2024-12-31"
        assert 0.7 <= same_region / len(rows) <= 0.85
        assert any(row["valid_until"] is None for row in rows)
        assert {row["subject_type"] for row in rows} == {"NATURAL_PERSON", "LEGAL_PERSON"}


def test_examples_for_cross_region_tests_exist(dataset: Dataset) -> None:
    for region in DELTA_REGIONS:
        person = dataset.cross_region_person(region)
        held = {r["region"] for r in dataset.residences_of(person["id_number"])}
        held |= {r["region"] for r in dataset.social_insurance_of(person["id_number"])}
        assert held - {region}

        enterprise = dataset.cross_region_enterprise(region)
        assert id_number_region(enterprise["legal_rep_id"], SHIPPED) != region

        representative = dataset.serial_representative(region)
        assert len(dataset.enterprises_of(representative["id_number"])) >= 2

        for subject_type in ("NATURAL_PERSON", "LEGAL_PERSON"):
            subject = dataset.multi_region_credit_subject(region, subject_type)
            kind = "id_number" if subject_type == "NATURAL_PERSON" else "uscc"
            assert key_region(kind, subject, SHIPPED) == region
            records = dataset.credit_records_of(subject)
            assert {r["subject_type"] for r in records} == {subject_type}
            assert len({r["region"] for r in records}) >= 2


def test_credit_records_can_be_streamed_by_kind(dataset: Dataset) -> None:
    everything = every_row(dataset, "credit_record", "ZJ")
    penalties = list(dataset.credit_records("ZJ", kinds={"ADMIN_PENALTY"}))
    assert penalties == [row for row in everything if row["kind"] == "ADMIN_PENALTY"]


def test_streams_are_lazy() -> None:
    # A million persons per region: only what is taken is built.
    data = Dataset(persons_per_region=1_000_000, seed=3)
    assert len(list(islice(data.residences("AH"), 5))) == 5
    assert data.person("JS", 999_999)["household_region"] == "JS"


@pytest.mark.parametrize("persons", [0, 3, 30_000_000])
def test_sizes_out_of_range_are_refused(persons: int) -> None:
    with pytest.raises(ValueError, match="persons_per_region"):
        Dataset(persons_per_region=persons, seed=1)
