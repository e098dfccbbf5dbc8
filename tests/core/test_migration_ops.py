"""core/migration_ops.py: big tables indexed without blocking writers; a retry after an interrupted build."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from core.migration_ops import AddIndexOnline, index_state

pytestmark = pytest.mark.django_db(transaction=True)

MIGRATION = ("completions", "0011_generation_model_stream_indexes")
INDEX = "generation_model_started"


def _operation() -> tuple[AddIndexOnline, object, object]:
    loader = MigrationExecutor(connection).loader
    migration = loader.get_migration(*MIGRATION)
    operation = next(op for op in migration.operations if op.index.name == INDEX)
    before = loader.project_state(loader.graph.node_map[MIGRATION].parents.copy().pop().key)
    after = loader.project_state(MIGRATION)
    return operation, before, after


def _definition() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX])
        return cursor.fetchone()[0]


def test_the_migration_builds_its_indexes_concurrently_outside_a_transaction():
    operation, before, after = _operation()
    assert operation.atomic is False
    with connection.cursor() as cursor:
        cursor.execute(f'DROP INDEX "{INDEX}"')
    with connection.schema_editor(atomic=False) as editor, CaptureQueriesContext(connection) as queries:
        operation.database_forwards("completions", editor, before, after)
    assert any("CREATE INDEX CONCURRENTLY" in q["sql"] and INDEX in q["sql"] for q in queries.captured_queries)
    assert index_state(editor, INDEX) == "valid"
    assert "(model_id, started_at DESC)" in _definition()


def test_a_retry_after_an_interrupted_build_replaces_the_invalid_leftover():
    operation, before, after = _operation()
    # What an interrupted CREATE INDEX CONCURRENTLY leaves: an index of the name, marked invalid.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '\"{INDEX}\"'::regclass")
    with connection.schema_editor(atomic=False) as editor:
        assert index_state(editor, INDEX) == "invalid"
        operation.database_forwards("completions", editor, before, after)
        assert index_state(editor, INDEX) == "valid"


def test_inside_a_transaction_the_build_is_refused_with_a_reason():
    operation, before, after = _operation()
    with pytest.raises(ValueError, match="atomic = False"):
        with connection.schema_editor(atomic=True) as editor:
            operation.database_forwards("completions", editor, before, after)
