"""The GIN index behind the corpus search, on PostgreSQL only (SQLite has no tsvector: the embedded
mode searches with a substring match instead, see selectors.corpus_search)."""

from django.db import migrations

INDEX = "unlearning_corpus_search_gin"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON unlearning_corpusdocument USING gin (search)")


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("unlearning", "0001_initial")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
