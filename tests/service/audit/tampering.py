"""Changing the audit log behind its append-only trigger's back, as an attacker with table-owner
rights could: the tests that show the hash chain finds such a change use this one helper."""

from __future__ import annotations

from django.db import connection


def tamper(sql: str, params: list | None = None) -> None:
    """Runs `sql` on audit_auditevent with its user triggers disabled, then enables them again. The
    test database is throwaway and the test's transaction is rolled back afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        try:
            cursor.execute(sql, params or [])
        finally:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
