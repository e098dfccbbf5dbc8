"""Keep a tenth of each generation page free, so that a generation's settlement updates it in place (HOT).

A generation is inserted small (pending, at its hold) and updated once, larger, when it is settled. An
update stays on its row's page, without writing the table's indexes, only if the page has room for
the new version; and PostgreSQL places an insert into any page its free space map says has room for the
row plus this reserve, so that a new row does not land in a small gap of an old, full page (where its
settlement would then have to move it, and write every index). PostgreSQL only; it applies to pages
written from now on.
"""

from django.db import migrations

FILLFACTOR = 90


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE completions_generation SET (fillfactor = {FILLFACTOR})")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE completions_generation RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("completions", "0011_generation_model_stream_indexes")]

    operations = [migrations.RunPython(forward, backward)]
