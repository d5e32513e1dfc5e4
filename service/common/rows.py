"""INSERT of model instances without the ORM's query builder, for the hottest writes (the intake).

Building and compiling an InsertQuery costs more CPU than the statement itself: in the intake
profile (bench/intake_profile.py) Model.objects.create() of one request was a quarter of the
request's CPU, most of it compiling. `insert_rows` writes the same statement: the values are
prepared by the fields themselves, exactly as the ORM does it (pre_save with add=True: defaults
already set, auto_now and auto_now_add; then get_db_prep_save: encryption, JSON, datetimes), and
what the database returns (an auto id) is set on the instances. No pre_save/post_save signals are
sent: use it only for models that have no receivers (tests/service/common/test_rows.py checks the
stored rows are the ORM's). Database errors come out as Django's (IntegrityError, ...), as with the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def insert_rows(instances: Sequence[models.Model]) -> Sequence[models.Model]:
    """One INSERT of `instances` (all of one model), in the caller's transaction; returns them saved."""
    if not instances:
        return instances
    opts = type(instances[0])._meta
    written = [field for field in opts.concrete_fields if not field.db_returning]
    returned = [field for field in opts.concrete_fields if field.db_returning]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(written)) + ")"
    sql = f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(field.column) for field in written)}) VALUES {', '.join([row] * len(instances))}"
    if returned:
        # PostgreSQL returns multi-row RETURNING in VALUES order (bulk_create relies on it too).
        sql += f" RETURNING {', '.join(quote(field.column) for field in returned)}"
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for instance in instances for field in written]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if returned else [()] * len(instances)
    for instance, values in zip(instances, rows, strict=True):
        for field, value in zip(returned, values, strict=True):
            setattr(instance, field.attname, value)
        instance._state.adding, instance._state.db = False, connection.alias
    return instances
