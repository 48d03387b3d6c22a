"""The audit log: one hash-chained event per operation that touched L2+ data.

``AuditStore`` writes events (group commit, fail closed) and reads them back;
``verify`` and ``tail`` check and list them from the command line
(``deltagate audit verify|tail``); ``deltagate audit init``, run by the table's
owner, creates the table and its guards, which the gateway only checks. See
``events`` for the chain's rules.
"""

from gateway.audit.commands import add_audit_commands
from gateway.audit.database import (
    DATABASE,
    EventQuery,
    check_schema,
    create_database,
    create_schema,
    database_dsn,
    init_schema,
)
from gateway.audit.events import (
    CHINA_TIME,
    GENESIS,
    HASH_ALGORITHM,
    AuditEvent,
    StoredEvent,
)
from gateway.audit.record import operation_event, touches_audited_data
from gateway.audit.store import AuditStore, Receipt
from gateway.audit.verify import Break, VerifyReport, tail, verify

__all__ = [
    "CHINA_TIME",
    "DATABASE",
    "GENESIS",
    "HASH_ALGORITHM",
    "AuditEvent",
    "AuditStore",
    "Break",
    "EventQuery",
    "Receipt",
    "StoredEvent",
    "VerifyReport",
    "add_audit_commands",
    "check_schema",
    "create_database",
    "create_schema",
    "database_dsn",
    "init_schema",
    "operation_event",
    "tail",
    "touches_audited_data",
    "verify",
]
