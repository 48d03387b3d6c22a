"""Anhui's native schema: one JSONB document per record, camelCase keys.

Each table is ``(doc jsonb)``; look-ups use expression indexes on exactly the
expression the mapping compiler emits for a path (``"doc" #>> '{a,b}'``), or
PostgreSQL would not use them. Dates are ISO strings, gender is ``male`` /
``female``, the household region is a province code, money a JSON number of 万元.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from gateway.core.types import Row
from gateway.synthetic.divisions import PROVINCE_CODES
from gateway.synthetic.native.table import NativeTable

REGION = "AH"

GENDER = {"MALE": "male", "FEMALE": "female"}
SUBJECT = {"LEGAL_PERSON": "legal", "NATURAL_PERSON": "natural"}
CATEGORY = {
    "ADMIN_PENALTY": "punishment",
    "ADMIN_LICENSE": "permit",
    "DISHONEST_EXECUTEE": "dishonestExecutee",
    "COMMENDATION": "honor",
}


def _number(value: Decimal) -> orjson.Fragment:
    """A Decimal as a JSON number, exactly (no float on the way)."""
    return orjson.Fragment(str(value))


def _document(build: Callable[[Row], dict[str, Any]]) -> Callable[[Row], tuple[object, ...]]:
    def convert(row: Row) -> tuple[object, ...]:
        return (orjson.dumps(build(row)).decode(),)

    return convert


def _person(row: Row) -> dict[str, Any]:
    return {
        "idNumber": row["id_number"],
        "name": row["name"],
        "gender": GENDER[row["gender"]],
        "birthDate": row["birth_date"],
        "ethnicity": row["ethnicity"],
        "household": {
            "provinceCode": PROVINCE_CODES[row["household_region"]],
            "address": row["household_address"],
        },
        "contact": {"mobile": row["phone"]},
    }


def _residence(row: Row) -> dict[str, Any]:
    return {"personId": row["person_id"], "address": row["address"], "registeredOn": row["since"]}


def _insurance(row: Row) -> dict[str, Any]:
    return {
        "personId": row["person_id"],
        "insurance": {"type": row["insurance_type"], "status": row["status"]},
        "since": row["since"],
    }


def _enterprise(row: Row) -> dict[str, Any]:
    return {
        "uscc": row["uscc"],
        "name": row["name"],
        "entityType": row["entity_type"],
        "status": row["status"],
        "capital": {"amount": _number(row["registered_capital"]), "unit": "万元"},
        "establishedOn": row["established_on"],
        "registrationAuthority": row["registration_authority"],
        "address": row["address"],
        "businessScope": row["business_scope"],
        "legalRepresentative": {"idNumber": row["legal_rep_id"]},
    }


def _credit(row: Row) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "recordId": row["id"],
        "subject": {"id": row["subject_id"], "type": SUBJECT[row["subject_type"]]},
        "category": CATEGORY[row["kind"]],
        "title": row["title"],
        "docNo": row["document_number"],
        "authority": row["authority"],
        "decidedOn": row["decided_on"],
        "detail": row["detail"],
    }
    # Absent keys rather than nulls: a document store leaves out what it does not know.
    if row["valid_until"] is not None:
        doc["validUntil"] = row["valid_until"]
    if row["amount"] is not None:
        doc["fine"] = {"amount": _number(row["amount"]), "unit": "万元"}
    return doc


def _path(path: str) -> str:
    """The expression the mapping compiler emits for ``path = "a.b"``."""
    return "(\"doc\" #>> '{%s}')" % path.replace(".", ",")  # noqa: UP031 (braces)


def _index(table: str, name: str, path: str, *, unique: bool = False) -> str:
    unique_ = "UNIQUE " if unique else ""
    return f"CREATE {unique_}INDEX {table}_{name} ON {table} ({_path(path)})"


_DOC = (("doc", "jsonb NOT NULL"),)

TABLES: tuple[NativeTable, ...] = (
    NativeTable(
        "person_doc",
        "person",
        _DOC,
        _document(_person),
        (_index("person_doc", "id_number", "idNumber", unique=True),),
    ),
    NativeTable(
        "residence_doc",
        "residence",
        _DOC,
        _document(_residence),
        (_index("residence_doc", "person_id", "personId"),),
    ),
    NativeTable(
        "insurance_doc",
        "social_insurance",
        _DOC,
        _document(_insurance),
        (_index("insurance_doc", "person_id", "personId"),),
    ),
    NativeTable(
        "corp_doc",
        "enterprise",
        _DOC,
        _document(_enterprise),
        (
            _index("corp_doc", "uscc", "uscc", unique=True),
            _index("corp_doc", "legal_rep_id", "legalRepresentative.idNumber"),
            # Name-prefix search compares and orders (name, uscc) in the "C" collation.
            f"CREATE INDEX corp_doc_name ON corp_doc"
            f' (({_path("name")} COLLATE "C"), ({_path("uscc")} COLLATE "C"))',
        ),
    ),
    NativeTable(
        "credit_doc",
        "credit_record",
        _DOC,
        _document(_credit),
        (_index("credit_doc", "subject_id", "subject.id"),),
    ),
)
