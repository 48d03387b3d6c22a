"""Jiangsu's native schema: English snake_case, ``M``/``F``, capital in yuan.

One ``credit_event`` table holds every kind of credit record, told apart by a
``kind`` column with Jiangsu's own codes; money (registered capital, fines) is
kept in yuan, so the mapping scales it to 万元.
"""

from __future__ import annotations

from gateway.core.types import Row
from gateway.synthetic.native.table import NativeTable, to_date, yuan

REGION = "JS"

GENDER = {"MALE": "M", "FEMALE": "F"}
SCHEME = {
    "企业职工基本养老保险": "pension",
    "职工基本医疗保险": "medical",
    "失业保险": "unemployment",
    "工伤保险": "work_injury",
    "生育保险": "maternity",
    "城乡居民基本养老保险": "resident_pension",
    "城乡居民基本医疗保险": "resident_medical",
}
INSURANCE_STATUS = {"参保缴费": "active", "暂停缴费": "suspended", "终止参保": "terminated"}
ENTITY_TYPE = {
    "有限责任公司": "llc",
    "股份有限公司": "joint_stock",
    "个人独资企业": "sole_proprietorship",
    "合伙企业": "partnership",
}
STATUS = {
    "存续": "subsisting",
    "在业": "operating",
    "迁出": "moved_out",
    "注销": "deregistered",
    "吊销": "revoked",
}
SUBJECT = {"LEGAL_PERSON": "organization", "NATURAL_PERSON": "person"}
KIND = {
    "ADMIN_PENALTY": "penalty",
    "ADMIN_LICENSE": "license",
    "DISHONEST_EXECUTEE": "dishonest",
    "COMMENDATION": "commendation",
}


def _person(row: Row) -> tuple[object, ...]:
    return (
        row["id_number"],
        row["name"],
        GENDER[row["gender"]],
        to_date(row["birth_date"]),
        row["ethnicity"],
        row["household_address"],
        row["phone"],
    )


def _residence(row: Row) -> tuple[object, ...]:
    return (row["person_id"], row["address"], to_date(row["since"]))


def _insurance(row: Row) -> tuple[object, ...]:
    return (
        row["person_id"],
        SCHEME[row["insurance_type"]],
        INSURANCE_STATUS[row["status"]],
        to_date(row["since"]),
    )


def _enterprise(row: Row) -> tuple[object, ...]:
    return (
        row["uscc"],
        row["name"],
        ENTITY_TYPE[row["entity_type"]],
        STATUS[row["status"]],
        yuan(row["registered_capital"]),
        to_date(row["established_on"]),
        row["registration_authority"],
        row["address"],
        row["business_scope"],
        row["legal_rep_id"],
    )


def _credit(row: Row) -> tuple[object, ...]:
    return (
        row["id"],
        row["subject_id"],
        SUBJECT[row["subject_type"]],
        KIND[row["kind"]],
        row["title"],
        row["document_number"],
        row["authority"],
        to_date(row["decided_on"]),
        to_date(row["valid_until"]),
        yuan(row["amount"]),
        row["detail"],
    )


TABLES: tuple[NativeTable, ...] = (
    NativeTable(
        "person",
        "person",
        (
            ("id_number", "varchar(18) NOT NULL"),
            ("full_name", "varchar(50) NOT NULL"),
            ("sex", "varchar(1)"),
            ("date_of_birth", "date"),
            ("ethnic_group", "varchar(20)"),
            ("hukou_address", "varchar(200)"),
            ("mobile", "varchar(20)"),
        ),
        _person,
        ("CREATE UNIQUE INDEX person_id_number ON person (id_number)",),
    ),
    NativeTable(
        "residence",
        "residence",
        (
            ("person_id_number", "varchar(18) NOT NULL"),
            ("address", "varchar(200)"),
            ("registered_on", "date"),
        ),
        _residence,
        ("CREATE INDEX residence_person_id_number ON residence (person_id_number)",),
    ),
    NativeTable(
        "social_insurance",
        "social_insurance",
        (
            ("person_id_number", "varchar(18) NOT NULL"),
            ("scheme", "varchar(20)"),
            ("status", "varchar(12)"),
            ("start_date", "date"),
        ),
        _insurance,
        ("CREATE INDEX social_insurance_person_id_number ON social_insurance (person_id_number)",),
    ),
    NativeTable(
        "enterprise",
        "enterprise",
        (
            ("uscc", "varchar(18) NOT NULL"),
            ("name", "varchar(200) NOT NULL"),
            ("entity_type", "varchar(20)"),
            ("status", "varchar(12)"),
            ("registered_capital_yuan", "numeric(20,2)"),
            ("established_on", "date"),
            ("registration_authority", "varchar(100)"),
            ("address", "varchar(200)"),
            ("business_scope", "text"),
            ("legal_rep_id_number", "varchar(18)"),
        ),
        _enterprise,
        (
            "CREATE UNIQUE INDEX enterprise_uscc ON enterprise (uscc)",
            "CREATE INDEX enterprise_legal_rep_id_number ON enterprise (legal_rep_id_number)",
            'CREATE INDEX enterprise_name ON enterprise (name COLLATE "C", uscc COLLATE "C")',
        ),
    ),
    NativeTable(
        "credit_event",
        "credit_record",
        (
            ("event_id", "varchar(32) NOT NULL"),
            ("subject_id", "varchar(18) NOT NULL"),
            ("subject_type", "varchar(12) NOT NULL"),
            ("kind", "varchar(12) NOT NULL"),
            ("title", "varchar(200)"),
            ("document_no", "varchar(100)"),
            ("authority", "varchar(100)"),
            ("decided_on", "date"),
            ("valid_until", "date"),
            ("amount_yuan", "numeric(18,2)"),
            ("detail", "text"),
        ),
        _credit,
        ("CREATE INDEX credit_event_subject_id ON credit_event (subject_id)",),
    ),
)
