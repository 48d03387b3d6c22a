"""The gateway reaches the audit log only through ``AuditLog``: a new store is one new class."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.audit import AuditLog, PostgresAuditLog
from gateway.edge.app import Gateway
from tests.conftest import gateway_settings

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("gateway", "policies", "resolvers", "schema")

#: The modules that hold the audit log's SQL, and the one allowed to use them.
SQL_MODULES = {"gateway.audit.sql", "gateway.audit.postgres"}


def package_files() -> list[Path]:
    return sorted(path for name in PACKAGES for path in (ROOT / name).rglob("*.py"))


def imported_names(path: Path) -> set[str]:
    """Each ``module`` and ``module.name`` the file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


async def test_the_gateway_holds_its_audit_log_as_the_interface(admin_dsn: str) -> None:
    gateway = Gateway.from_settings(gateway_settings(admin_dsn))
    try:
        assert isinstance(gateway.audit, AuditLog)
        assert type(gateway.audit) is PostgresAuditLog  # built from settings, once
    finally:
        await gateway.close()


def test_resolvers_and_schema_name_only_the_interface() -> None:
    for name in ("resolvers", "schema"):
        for path in (ROOT / name).rglob("*.py"):
            names = imported_names(path)
            assert not names & SQL_MODULES, path
            assert "gateway.audit.PostgresAuditLog" not in names, path


def test_the_audit_sql_is_used_by_the_postgres_store_alone() -> None:
    users = {
        str(path.relative_to(ROOT))
        for path in package_files()
        if "gateway.audit.sql" in imported_names(path)
    }
    assert users == {"gateway/audit/postgres.py"}
    # No statement on the audit table is written anywhere else either.
    for path in package_files():
        if path.name != "sql.py" or path.parent.name != "audit":
            text = path.read_text(encoding="utf-8")
            assert "FROM audit_event" not in text, path
            assert "INTO audit_event" not in text, path


def test_only_the_edge_builds_a_postgres_audit_log() -> None:
    builders = {
        str(path.relative_to(ROOT))
        for path in package_files()
        if "gateway.audit.PostgresAuditLog" in imported_names(path)
        or "gateway.audit.postgres.PostgresAuditLog" in imported_names(path)
    }
    # The edge builds the gateway's; the audit commands open one to read and verify; the
    # package's __init__ states its public surface.
    assert builders == {
        "gateway/edge/build.py",
        "gateway/audit/commands.py",
        "gateway/audit/__init__.py",
    }
