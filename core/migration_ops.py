"""Migration operations that keep a live database writable while they run.

`AddIndexOnline` builds an index on a big table without blocking its writers: on PostgreSQL with
`CREATE INDEX CONCURRENTLY` (the table stays writable; the build takes longer), elsewhere (the SQLite
demo) as a plain `CREATE INDEX`. A concurrent build that was interrupted — a lost connection, a
cancelled deploy, a deadlock — leaves an INVALID index of the same name behind, which PostgreSQL keeps
updating but never reads; running the migration again drops that leftover and builds the index anew,
so a retried deploy needs no manual clean-up. A migration holding these operations must be
`atomic = False`: CONCURRENTLY cannot run inside a transaction.
"""

from __future__ import annotations

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations import AddIndex
from django.db.migrations.state import ProjectState


class AddIndexOnline(AddIndex):
    """`AddIndex`, built concurrently on PostgreSQL; the migration state is exactly AddIndex's."""

    atomic = False

    def describe(self) -> str:
        return f"Create index {self.index.name} on {self.model_name} without blocking writes"

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        if connection.in_atomic_block:
            raise ValueError(f"{self.index.name}: a concurrent index build needs a migration with atomic = False")
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(connection.alias, model):
            return
        if index_state(schema_editor, self.index.name) == "invalid":
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}")
        schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            return
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


def index_state(schema_editor: BaseDatabaseSchemaEditor, name: str) -> str | None:
    """'valid', 'invalid' (a concurrent build that did not finish) or None (no such index) — PostgreSQL only."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND pg_catalog.pg_table_is_visible(c.oid)",
            [name],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return "valid" if row[0] else "invalid"
