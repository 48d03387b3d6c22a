"""The audit log: one hash-chained event per operation that touched L2+ data.

``AuditLog`` is the interface everything else uses: ``append`` (group commit,
fail closed), ``read`` (an ``EventQuery``: filters, paging, order), ``head``,
``verify``, ``ping`` and ``close``. ``PostgresAuditLog`` implements it; the
audit log's SQL is in ``postgres`` and ``sql`` alone. ``deltagate audit
verify|tail`` check and list events through the interface; ``deltagate audit
init``, run by the tables' owner, creates the tables and their guards, which the
gateway only checks. See ``events`` for the chains' rules (one per writer) and
``checkpoints`` for the signed roots that bind their heads.
"""

from gateway.audit.checkpoints import (
    DEVELOPMENT_SECRET,
    SECRET_VARIABLE,
    Checkpoint,
    Head,
    checkpoint_secret,
)
from gateway.audit.commands import add_audit_commands
from gateway.audit.events import (
    CHINA_TIME,
    GENESIS,
    HASH_ALGORITHM,
    LEGACY_CHAIN,
    AuditEvent,
    StoredEvent,
)
from gateway.audit.log import (
    NOTHING_EXPECTED,
    AuditLog,
    EventQuery,
    Expectation,
    Receipt,
    WorkingHours,
    receipt_document,
    scan,
)
from gateway.audit.postgres import (
    DATABASE,
    PostgresAuditLog,
    create_database,
    database_dsn,
    init_schema,
    verify,
)
from gateway.audit.record import operation_event, touches_audited_data
from gateway.audit.verify import Break, VerifyReport, check_chain, check_log

__all__ = [
    "CHINA_TIME",
    "DATABASE",
    "DEVELOPMENT_SECRET",
    "GENESIS",
    "HASH_ALGORITHM",
    "LEGACY_CHAIN",
    "NOTHING_EXPECTED",
    "SECRET_VARIABLE",
    "AuditEvent",
    "AuditLog",
    "Break",
    "Checkpoint",
    "EventQuery",
    "Expectation",
    "Head",
    "PostgresAuditLog",
    "Receipt",
    "StoredEvent",
    "VerifyReport",
    "WorkingHours",
    "add_audit_commands",
    "check_chain",
    "check_log",
    "checkpoint_secret",
    "create_database",
    "database_dsn",
    "init_schema",
    "operation_event",
    "receipt_document",
    "scan",
    "touches_audited_data",
    "verify",
]
