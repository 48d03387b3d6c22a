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


def test_the_sdl_is_a_federation_2_subgraph_keyed_by_id_number_and_uscc() -> None:
    sdl = SDL_PATH.read_text(encoding="utf-8")
    assert sdl.startswith(
        'schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key"]) {'
    )
    assert 'type NaturalPerson @key(fields: "idNumber") {' in sdl
    assert 'type LegalPerson @key(fields: "uscc") {' in sdl
    assert "_entities(representations: [_Any!]!): [_Entity]!" in sdl
    assert "union _Entity = NaturalPerson | LegalPerson" in sdl


async def test_service_sdl_is_the_committed_sdl() -> None:
    # What a supergraph composes from, by introspecting ``_service`` or from the file.
    result = await schema.execute("{ _service { sdl } }")
    assert result.errors is None
    assert result.data == {"_service": {"sdl": SDL_PATH.read_text(encoding="utf-8").rstrip("\n")}}
