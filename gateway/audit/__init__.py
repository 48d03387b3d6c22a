"""The audit log: one hash-chained event per operation that touched L2+ data.

``AuditLog`` is the interface everything else uses: ``append`` (group commit,
fail closed), ``read`` (an ``EventQuery``: filters, paging, order), ``head``,
``verify``, ``ping`` and ``close``. ``PostgresAuditLog`` implements it; the
audit log's SQL is in ``postgres`` and ``sql`` alone. ``deltagate audit
verify|tail`` check and list events through the interface; ``deltagate audit
init``, run by the table's owner, creates the table and its guards, which the
gateway only checks. See ``events`` for the chain's rules.
"""

from gateway.audit.commands import add_audit_commands
from gateway.audit.events import (
    CHINA_TIME,
    GENESIS,
    HASH_ALGORITHM,
    AuditEvent,
    StoredEvent,
)
from gateway.audit.log import AuditLog, EventQuery, Receipt, WorkingHours, receipt_document
from gateway.audit.postgres import (
    DATABASE,
    PostgresAuditLog,
    create_database,
    database_dsn,
    init_schema,
    verify,
)
from gateway.audit.record import operation_event, touches_audited_data
from gateway.audit.verify import Break, VerifyReport, check_chain

__all__ = [
    "CHINA_TIME",
    "DATABASE",
    "GENESIS",
    "HASH_ALGORITHM",
    "AuditEvent",
    "AuditLog",
    "Break",
    "EventQuery",
    "PostgresAuditLog",
    "Receipt",
    "StoredEvent",
    "VerifyReport",
    "WorkingHours",
    "add_audit_commands",
    "check_chain",
    "create_database",
    "database_dsn",
    "init_schema",
    "operation_event",
    "receipt_document",
    "touches_audited_data",
    "verify",
]
