"""The unified vocabulary: every entity a source serves and the fields of its rows.

Sources translate their native tables into rows with exactly these keys (see
``gateway/sources/mappings/README.md``); the schema, the resolvers and the policies
speak only this vocabulary. Value conventions, whatever the native storage:

- dates are ISO ``YYYY-MM-DD`` strings;
- genders are ``MALE`` / ``FEMALE`` (GB/T 2261.1 ``1`` / ``2``);
- money (registered capital, penalty amounts) is a ``Decimal`` in 万元 with four
  decimal places, so one yuan is exact;
- region codes are ``SH`` / ``JS`` / ``ZJ`` / ``AH``;
- credit-record kinds are ``ADMIN_PENALTY`` / ``ADMIN_LICENSE`` /
  ``DISHONEST_EXECUTEE`` / ``COMMENDATION``, subject types ``NATURAL_PERSON`` /
  ``LEGAL_PERSON``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: entity -> (key field used for look-ups by identifier, all fields in order)
ENTITY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "person": (
        "id_number",
        "name",
        "gender",
        "birth_date",
        "ethnicity",
        "household_region",
        "household_address",
        "phone",
    ),
    "residence": ("person_id", "region", "address", "since"),
    "social_insurance": ("person_id", "region", "insurance_type", "status", "since"),
    "enterprise": (
        "uscc",
        "name",
        "entity_type",
        "status",
        "registered_capital",
        "established_on",
        "registration_authority",
        "region",
        "address",
        "business_scope",
        "legal_rep_id",
    ),
    "credit_record": (
        "id",
        "subject_id",
        "subject_type",
        "kind",
        "title",
        "document_number",
        "authority",
        "decided_on",
        "valid_until",
        "amount",
        "region",
        "detail",
    ),
}

#: The field each entity is looked up by when asked "rows for these keys".
ENTITY_KEYS: Mapping[str, str] = {
    "person": "id_number",
    "residence": "person_id",
    "social_insurance": "person_id",
    "enterprise": "uscc",
    "credit_record": "subject_id",
}

#: Fields whose unified values are ISO dates.
DATE_FIELDS = frozenset({"birth_date", "since", "established_on", "decided_on", "valid_until"})
#: Fields whose unified values are Decimal 万元.
MONEY_FIELDS = frozenset({"registered_capital", "amount"})

CREDIT_KINDS = ("ADMIN_PENALTY", "ADMIN_LICENSE", "DISHONEST_EXECUTEE", "COMMENDATION")
