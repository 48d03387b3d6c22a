"""The fields an operation selects per type: what the policy decides and masks in bulk."""

from __future__ import annotations

from graphql import OperationDefinitionNode, parse

from resolvers.selection import selected_fields
from schema import schema


def selection(document: str) -> dict[str, frozenset[str]]:
    tree = parse(document)
    operation = next(d for d in tree.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {d.name.value: d for d in tree.definitions if hasattr(d, "type_condition")}
    return dict(selected_fields(schema._schema, operation, fragments))


def test_fields_are_gathered_per_type_across_the_document() -> None:
    found = selection(
        """
        query {
          legalPersons(usccs: []) {
            name
            legalRepresentative { name phone creditRecords { kind } }
            creditRecords { kind title }
          }
          naturalPerson(idNumber: "x") { idNumber name }
        }
        """
    )
    assert found["LegalPerson"] == {"name", "legalRepresentative", "creditRecords"}
    assert found["NaturalPerson"] == {"name", "phone", "creditRecords", "idNumber"}
    assert found["CreditRecord"] == {"kind", "title"}


def test_fragments_and_inline_fragments_count() -> None:
    found = selection(
        """
        query {
          naturalPerson(idNumber: "x") { ...Who ... on NaturalPerson { birthDate } }
        }
        fragment Who on NaturalPerson { name residences { address } }
        """
    )
    assert found["NaturalPerson"] == {"name", "residences", "birthDate"}
    assert found["Residence"] == {"address"}


def test_a_fragment_cycle_ends() -> None:
    # Validation refuses this document; the walk must still end if it ever sees one.
    found = selection(
        """
        query { naturalPerson(idNumber: "x") { ...A } }
        fragment A on NaturalPerson { name ...B }
        fragment B on NaturalPerson { phone ...A }
        """
    )
    assert found["NaturalPerson"] == {"name", "phone"}


def test_typename_is_not_a_field_of_the_type() -> None:
    found = selection('query { legalPerson(uscc: "x") { __typename uscc } }')
    assert found["LegalPerson"] == {"uscc"}
