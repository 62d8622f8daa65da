"""The migrations policy, checked: a release's migrations only expand the schema (docs/deploy.md), so
the old code keeps writing while a deploy switches and after a rollback. A contract step (a drop, a
rename, a column made required) is a release of its own, named in CONTRACT with the reason."""

import pytest
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader

# "app_label.migration_name": why the code before it no longer needs what it removes or requires.
CONTRACT = {}

ALWAYS_CONTRACT = (
    migrations.RemoveField,
    migrations.RenameField,
    migrations.DeleteModel,
    migrations.RenameModel,
    migrations.AlterUniqueTogether,
)


def contract_operations(migration):
    """What in a migration the previous release's code could not live with, one line each."""
    found = []
    for operation in migration.operations:
        name = f"{migration.app_label}.{migration.name}: {operation.describe()}"
        if isinstance(operation, ALWAYS_CONTRACT):
            found.append(f"{name} (the old code still uses it)")
        elif isinstance(operation, (migrations.AddField, migrations.AlterField)):
            field = operation.field
            required = not field.null and not field.many_to_many
            if required and field.db_default is models.NOT_PROVIDED:
                found.append(f"{name} (NOT NULL without db_default: the old code's INSERTs fail)")
    return found


def test_the_projects_migrations_only_expand_the_schema():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    ours = [m for (label, _), m in loader.disk_migrations.items() if label == "app"]
    assert ours, "no migrations of the app found"
    problems = [
        line
        for migration in ours
        if f"app.{migration.name}" not in CONTRACT and migration.initial is not True
        for line in contract_operations(migration)
    ]
    assert not problems, "a contract step outside a release of its own (docs/deploy.md):\n" + "\n".join(
        problems
    )


def migration_of(*operations):
    migration = migrations.Migration("0099_next", "app")
    migration.operations = list(operations)
    return migration


@pytest.mark.parametrize(
    "operation",
    [
        migrations.AddField("site", "rank", models.IntegerField(default=0)),  # default= is Python's alone
        migrations.AlterField("site", "description", models.TextField()),  # made required
        migrations.RemoveField("site", "description"),
        migrations.RenameField("site", "description", "summary"),
        migrations.DeleteModel("site"),
    ],
    ids=["not-null-python-default", "made-required", "remove", "rename", "delete-model"],
)
def test_what_the_old_code_cannot_write_to_is_refused(operation):
    assert contract_operations(migration_of(operation))


@pytest.mark.parametrize(
    "operation",
    [
        migrations.AddField("site", "rank", models.IntegerField(null=True)),
        migrations.AddField("site", "rank", models.IntegerField(db_default=0)),
        migrations.AddIndex("site", models.Index(fields=["name"], name="site_name_idx")),
        migrations.CreateModel("Tag", [("id", models.AutoField(primary_key=True))]),
    ],
    ids=["nullable", "db-default", "index", "new-table"],
)
def test_additions_the_old_code_can_live_with_pass(operation):
    assert contract_operations(migration_of(operation)) == []
