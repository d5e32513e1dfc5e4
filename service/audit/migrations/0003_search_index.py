"""A GIN index for full-text search over the audit log (PostgreSQL only; see service/audit/search.py).

An expression index: no column is added and no row is touched, so the append-only trigger (which
refuses UPDATE, DELETE and TRUNCATE) has nothing to refuse, and the hashes stay what they were.
Built CONCURRENTLY (hence atomic = False) so that appends to the log are not blocked while a large
log is indexed. SQLite (the embedded demo) searches without an index.
"""

from django.db import migrations

# Word for word service.audit.search.SEARCH_DOCUMENT_SQL over the bare columns.
SEARCH_DOCUMENT = (
    "(to_tsvector('english'::regconfig, translate(action, '._', '  '))"
    " || jsonb_to_tsvector('english'::regconfig, data, '[\"string\"]'::jsonb))"
)
FORWARD = f"CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_event_search_idx ON audit_auditevent USING gin ({SEARCH_DOCUMENT})"
BACKWARD = "DROP INDEX CONCURRENTLY IF EXISTS audit_event_search_idx"


INVALID = "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('audit_event_search_idx') AND NOT indisvalid"


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # An interrupted CREATE INDEX CONCURRENTLY leaves an invalid index that IF NOT EXISTS would keep.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(INVALID)
        if cursor.fetchone():
            schema_editor.execute(BACKWARD)
    schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("audit", "0002_append_only_triggers")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
