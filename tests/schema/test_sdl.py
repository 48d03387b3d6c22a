"""The committed SDL is the contract callers code against: it must match the Strawberry types."""

from __future__ import annotations

from schema import SDL_PATH, schema


def test_the_sdl_snapshot_matches_the_schema() -> None:
    committed = SDL_PATH.read_text(encoding="utf-8")
    current = schema.as_str() + "\n"
    assert committed == current, (
        "schema/schema.graphql is out of date; regenerate it with: python -m schema"
    )


def fields_of(type_name: str) -> set[str]:
    return set(schema._schema.type_map[type_name].fields)  # type: ignore[attr-defined]


def test_the_unified_names_are_the_design_names() -> None:
    assert fields_of("NaturalPerson") == {
        "idNumber", "name", "gender", "birthDate", "ethnicity", "householdRegion",
        "householdAddress", "phone", "residences", "socialInsurance", "enterprises",
        "creditRecords",
    }  # fmt: skip
    assert fields_of("LegalPerson") == {
        "uscc", "name", "entityType", "status", "registeredCapital", "establishedOn",
        "registrationAuthority", "region", "address", "businessScope", "legalRepresentative",
        "creditRecords",
    }  # fmt: skip
    assert fields_of("CreditRecord") == {
        "id", "subjectId", "subjectType", "kind", "title", "documentNumber", "authority",
        "decidedOn", "validUntil", "amount", "region", "detail",
    }  # fmt: skip
    assert fields_of("Residence") == {"region", "address", "since"}
    assert fields_of("SocialInsurance") == {"region", "insuranceType", "status", "since"}
    assert {
        "naturalPerson", "naturalPersons", "legalPerson", "legalPersons",
        "searchLegalPersons", "creditRecords", "catalog",
    } <= fields_of("Query")  # fmt: skip
