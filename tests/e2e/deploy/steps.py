"""The steps the deploy tests share: make in the clone, the revision serving, an edited file, a
migration added, a column looked up, the one line of an error."""

from tests.harness import run


def make(app, target, *args, **env):
    """`make <target>` in the clone, as its operator would run it (as root)."""
    return app.make(target, *args, **env)


def serving(app):
    """The revision that answers through nginx (the X-Revision header)."""
    return app.nginx.request("/")[1]["X-Revision"]


def edit(app, path, text):
    target = app.dir / path
    original = target.read_text() if target.exists() else None
    target.write_text(text if original is None else original + text)
    return lambda: target.write_text(original) if original is not None else target.unlink(missing_ok=True)


def revision_of(image):
    template = '{{index .Config.Labels "org.opencontainers.image.revision"}}'
    return run(["docker", "image", "inspect", "-f", template, image]).stdout.strip()


def one_line_error(result):
    """The last line of the tool's own (make's "*** Error" line aside): its one clear message."""
    return ([line for line in result.stderr.splitlines() if not line.startswith("make: ***")] or [""])[-1]


MIGRATION = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("app", "{latest}")]
    operations = [
        migrations.AddField("site", "{column}", {field}),
        {more}
    ]
"""


def add_migration(app, column, *, fails, field='models.TextField(default="")'):
    latest = max(p.stem for p in (app.dir / "app/migrations").glob("0*.py"))
    more = 'migrations.RunSQL("SELECT 1 / 0"),  # fails after the schema change above' if fails else ""
    text = MIGRATION.format(latest=latest, column=column, field=field, more=more)
    return edit(app, f"app/migrations/0999_{column}.py", text)


def column_exists(app, column):
    sql = f"SELECT count(*) FROM information_schema.columns WHERE column_name = '{column}'"  # noqa: S608
    return app.cluster.psql(sql, database=app.database) != "0"
