"""Backups and restores (make backup / backups / restore / restore-drill: scripts/backup.sh and
restore.sh) on the real stack over the recommended path: the host's socket, peer authentication as
the site's own account (the container's uid), the host's superuser `postgres` (Debian's own first
pg_hba line) to create and rename databases. Rows go in through the site's own code and come back
through nginx."""

import datetime
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import SESSION, Nginx, Stack, envfile, run, site_env, wait_for
from tests.harness.backup import admin_role
from tests.harness.deploy import deployed_site
from tests.harness.pgbouncer import peer_database, socket_env

ACCOUNT = f"sitekit-backup-{SESSION}"  # `sudo make account` names it like the stack's SITE


@pytest.fixture(scope="module")
def db(docker):
    cluster = admin_role(peer_database(ACCOUNT))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def site(e2e_root, stack, db):
    """A site on the socket path as the VPS guide sets it up (its own account, peer), backing up into
    a folder of its own."""
    app = Stack(e2e_root, "sitekit-backup", image=stack.image)
    assert app.name == ACCOUNT
    app.nginx = Nginx(e2e_root, app)
    app.backups = e2e_root / f"backups-{app.name}"
    app.write_env(site_env(db, app.nginx.https_port, **socket_env(db), BACKUP_DIR=str(app.backups)))
    app.site = envfile.parse((app.dir / ".env").read_text()).get("SITE", "sitekit")
    app.db = db
    try:
        app.make_account()
        app.up()
    except AssertionError:
        print(app.logs())
        app.remove_account()
        raise
    app.nginx.start()
    yield app
    print(app.logs()[-3000:])
    app.nginx.stop()
    app.down()
    app.remove_account()


def make(app, target, *args, user=None, **env):
    """`make <target>` in the clone, as its operator runs it (root), or as another uid."""
    argv = ["make", "-s", target, *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return run(argv, cwd=app.dir, env={**os.environ, **env}, check=False)


def one_line_error(result):
    """The script's own stderr (make's "*** Error" line aside): exactly one line, no traceback."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(lines) == 1 and "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return lines[0]


def add(app, name):
    """An approved site, written by the site's own code in its container."""
    url = f"https://{name.lower().replace(' ', '-')}.example.org"
    code = f"from app.models import Site; Site.objects.create(name={name!r}, url={url!r}, description='')"
    app.manage("shell", "-c", code + ".approve()")


def served(app):
    status, _, body = app.nginx.request("/")
    return body if status == 200 else None


def newest(app):
    return sorted(app.backups.glob("*.dump"))[-1]


def test_a_backup_restores_the_rows_after_the_database_is_dropped(site, db):
    add(site, "Kept Before Backup")
    result = make(site, "backup")
    assert result.returncode == 0, result.stdout + result.stderr
    dump = newest(site)
    assert re.fullmatch(rf"{site.site}-\d{{8}}T\d{{6}}Z-unknown\.dump", dump.name)  # time + serving revision
    assert f"backup: {dump} (" in result.stdout
    # Root's alone, and a checksum sha256sum -c accepts.
    assert (site.backups.stat().st_mode & 0o777, dump.stat().st_mode & 0o777, dump.stat().st_uid) == (
        0o700,
        0o600,
        0,
    )
    digest = hashlib.sha256(dump.read_bytes()).hexdigest()
    assert dump.with_name(dump.name + ".sha256").read_text() == f"{digest}  {dump.name}\n"
    listed = make(site, "backups").stdout
    assert re.search(rf"^{re.escape(dump.name)}\s+\S+\s+[0-5]m\s+unknown$", listed, re.M), listed

    db.psql('DROP DATABASE "sitekit" WITH (FORCE)', database="postgres")  # the mistake
    assert served(site) is None
    restored = make(site, "restore")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "Kept Before Backup" in wait_for(lambda: served(site), timeout=60, what="the site to serve again")

    # A row written after the backup: a restore discards it from the site, and keeps it in the old
    # database, renamed.
    add(site, "Written After Backup")
    again = make(site, "restore", f"FILE={dump.name}")
    assert again.returncode == 0, again.stdout + again.stderr
    body = wait_for(lambda: served(site), timeout=60, what="the site to serve again")
    assert "Kept Before Backup" in body and "Written After Backup" not in body
    [kept] = db.psql("SELECT datname FROM pg_database WHERE datname LIKE 'sitekit_before_restore_%'").split()
    assert db.psql("SELECT count(*) FROM app_site WHERE name = 'Written After Backup'", database=kept) == "1"
    db.psql(f'DROP DATABASE "{kept}"', database="postgres")


def untouched(site, db):
    """What a refused restore must leave as it was: the database, the running container, the page."""
    oid = db.psql("SELECT oid FROM pg_database WHERE datname = 'sitekit'")
    return oid, site.state()["StartedAt"], "Kept Before Backup" in (served(site) or "")


def test_bad_files_are_refused_with_one_line_and_nothing_touched(site, db, tmp_path):
    assert make(site, "backup").returncode == 0
    good = newest(site)
    data, checksum = good.read_bytes(), good.with_name(good.name + ".sha256").read_text()

    def beside(name, content, digest=None):  # a file with a checksum file naming it
        path = tmp_path / name
        path.write_bytes(content)
        digest = digest or hashlib.sha256(content).hexdigest()
        path.with_name(name + ".sha256").write_text(f"{digest}  {name}\n")
        return path

    original = checksum.split()[0]
    db.psql('CREATE DATABASE "othersite"', database="postgres")
    other = tmp_path / "other.dump"
    run(
        [
            "pg_dump",
            "-Fc",
            "-h",
            db.socket_dir,
            "-p",
            str(db.port),
            "-U",
            db.user,
            "-d",
            "othersite",
            "-f",
            other,
        ],
        env={**os.environ, "PGPASSWORD": db.password},
    )
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    no_checksum = tmp_path / "copied.dump"
    no_checksum.write_bytes(data)
    cases = {
        beside("truncated.dump", data[: len(data) // 2], original): "does not match its checksum",
        beside("corrupt.dump", bytes(corrupt), original): "does not match its checksum",
        no_checksum: "has no copied.dump.sha256 beside it",
        beside("notes.dump", b"SELECT 'not a dump';\n"): "is not a pg_dump archive",
        beside(
            "other.dump", other.read_bytes()
        ): "is a dump of database 'othersite', this site's is 'sitekit'",
        "nope.dump": "no backup nope.dump",
    }
    before = untouched(site, db)
    assert before[2]
    for path, reason in cases.items():
        result = make(site, "restore", f"FILE={path}")
        assert result.returncode != 0
        line = one_line_error(result)
        assert line.startswith("restore: error: ") and reason in line, line
    missing = make(site, "restore", BACKUP_DIR="/nonexistent/backups")
    assert (
        one_line_error(missing)
        == "restore: error: no backup folder /nonexistent/backups (make backup creates it)"
    )
    nobody = make(site, "restore", user=65534)
    assert "run it as root" in one_line_error(nobody) and nobody.returncode != 0
    assert untouched(site, db) == before

    # A dump whose checksum matches but whose data ends early (the disk failed while it was written):
    # the restore stops part-way, the new database goes, the site comes back on its own data.
    half = beside(f"{site.site}-20200101T000000Z-x.dump", data[:-40])  # its last table's data cut short
    failed = make(site, "restore", f"FILE={half}")
    assert failed.returncode != 0
    assert re.match(
        r"restore: error: pg_restore failed: could not read from input file: end of file; the database"
        r" is untouched$",
        failed.stderr.splitlines()[0],
    ), failed.stderr
    assert failed.stderr.splitlines()[1] == "restore: starting the site again on its database, untouched"
    assert db.psql("SELECT oid FROM pg_database WHERE datname = 'sitekit'") == before[0]
    assert db.psql("SELECT count(*) FROM pg_database WHERE datname = 'sitekit_restoring'") == "0"
    assert "Kept Before Backup" in wait_for(lambda: served(site), timeout=60, what="the site back")
    db.psql('DROP DATABASE "othersite"', database="postgres")


def test_the_drill_passes_on_a_good_backup_and_fails_on_a_bad_one(site, db):
    assert make(site, "backup").returncode == 0
    drill = make(site, "restore-drill")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert re.fullmatch(
        r"drill: ok: \S+ restores; \d+ migrations as the code's; rows as dumped \(\d+ sites\)\n", drill.stdout
    ), drill.stdout
    # A backup recording a migration this code does not have (a newer version's).
    db.psql("INSERT INTO django_migrations (app, name, applied) VALUES ('app', '0999_future', now())")
    try:
        assert make(site, "backup").returncode == 0
    finally:
        db.psql("DELETE FROM django_migrations WHERE name = '0999_future'")
    bad = run(["scripts/restore.sh", "drill"], cwd=site.dir, check=False)  # what the timer runs
    assert bad.returncode == 1
    assert re.fullmatch(
        r"drill: error: \S+: migrations differ from the code's \(1 apart\)", one_line_error(bad)
    )
    assert db.psql("SELECT count(*) FROM pg_database WHERE datname = 'sitekit_drill'") == "0"  # scratch gone
    assert make(site, "backup").returncode == 0  # the newest is good again


def test_retention_keeps_the_last_days_and_weeks_and_the_copy_hook_gets_each_backup(site, tmp_path):
    folder, target = tmp_path / "backups", tmp_path / "elsewhere"
    folder.mkdir(mode=0o700)
    target.mkdir()
    source = newest(site)
    today = datetime.datetime.now(datetime.UTC).date()
    made = {}
    for days in range(1, 11):
        day = today - datetime.timedelta(days=days)
        made[days] = f"{site.site}-{day:%Y%m%d}T100000Z-old.dump"
    made["labelled"] = f"{site.site}-{today - datetime.timedelta(days=1):%Y%m%d}T090000Z-old-before-new.dump"
    made["earlier"] = f"{site.site}-{today - datetime.timedelta(days=2):%Y%m%d}T080000Z-old.dump"
    for name in made.values():
        shutil.copy(source, folder / name)
        (folder / f"{name}.sha256").write_text("-\n")
    copy = f'cp "$1" "$2" {target}/'
    result = make(
        site,
        "backup",
        BACKUP_DIR=str(folder),
        BACKUP_KEEP_DAILY="3",
        BACKUP_KEEP_WEEKLY="2",
        BACKUP_COPY_COMMAND=copy,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Days with backups: today (the new one), yesterday (the newest and the pre-deploy one), the day
    # before (its newest). Weeks: this ISO week's newest (today's) and the previous week's newest.
    week = (today - datetime.timedelta(days=today.isoweekday())).isocalendar()[:2]
    last_week = min(d for d in range(1, 11) if (today - datetime.timedelta(days=d)).isocalendar()[:2] == week)
    expected = {made[1], made["labelled"], made[2], made[last_week]}
    left = {p.name for p in folder.glob("*.dump")}
    [new] = left - set(made.values())
    assert left - {new} == expected, result.stdout
    assert all((folder / f"{name}.sha256").exists() for name in left)
    assert sorted(p.name for p in target.iterdir()) == [new, f"{new}.sha256"]
    assert run(["sha256sum", "-c", f"{new}.sha256"], cwd=target, check=False).returncode == 0

    failing = make(site, "backup", BACKUP_DIR=str(folder), BACKUP_COPY_COMMAND="false")
    assert failing.returncode != 0
    assert re.fullmatch(
        r"backup: error: BACKUP_COPY_COMMAND failed: \S+ is on this host only", one_line_error(failing)
    )


def test_a_full_disk_or_no_permission_stops_a_backup_with_one_line(site, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", small])
    try:
        result = make(site, "backup", BACKUP_DIR=str(small))
        assert result.returncode != 0
        line = one_line_error(result)
        assert line.startswith("backup: error: pg_dump failed: ") and "No space left on device" in line, line
        assert line.endswith("; no backup written")
        assert sorted(p.name for p in small.iterdir()) == [".lock"]  # no partial file left behind
    finally:
        run(["umount", small], check=False)
    nobody = make(site, "backup", user=65534)
    assert nobody.returncode != 0 and "run it as root" in one_line_error(nobody)


def test_the_schedule_installs_a_timer_or_a_cron_line_that_backs_up_and_drills(site, tmp_path):
    units, cron = tmp_path / "systemd", tmp_path / "cron.d"
    units.mkdir()
    cron.mkdir()
    installed = make(site, "backup-schedule", SYSTEMD_DIR=str(units), SYSTEMCTL="true")
    assert installed.returncode == 0, installed.stderr
    service = (units / f"{site.site}-backup.service").read_text()
    assert f"ExecStart={site.dir}/scripts/backup.sh backup\n" in service
    assert f"ExecStart={site.dir}/scripts/restore.sh drill\n" in service
    assert "OnCalendar=" in (units / f"{site.site}-backup.timer").read_text()
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(
            ["systemd-analyze", "verify", units / f"{site.site}-backup.service"],
            capture_output=True,
            text=True,
        )
        assert "error" not in verify.stderr.lower(), verify.stderr
    if os.path.isdir("/run/systemd/system"):
        return  # this machine runs systemd: the cron line is for hosts that do not
    assert make(site, "backup-schedule", CRON_DIR=str(cron)).returncode == 0
    [line] = [
        x for x in (cron / f"{site.site}-backup").read_text().splitlines() if x and not x.startswith("#")
    ]
    minute, hour, _, _, _, user, command = line.split(None, 6)
    assert (minute, hour, user) == ("15", "3", "root")
    count = len(list(site.backups.glob("*.dump")))
    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True)  # as cron would
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert len(list(site.backups.glob("*.dump"))) == count + 1  # all of today's are kept


MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("app", "{latest}")]
    operations = [migrations.AddField("site", "{column}", models.TextField(null=True))]
"""


@pytest.fixture(scope="module")
def deployed(e2e_root, host_db):
    """A clone deployed as the VPS guide does it (revision v1 by make up), the database over TCP."""
    with deployed_site(e2e_root, host_db, "sitekit-bkdeploy", f"bkdeploy_{SESSION}") as app:
        app.backups = Path(envfile.parse((app.dir / ".env").read_text())["BACKUP_DIR"])
        yield app


def test_a_deploy_backs_up_before_migrations_and_a_failing_backup_stops_it(deployed):
    app = deployed
    revision = lambda: app.nginx.request("/")[1]["X-Revision"]  # noqa: E731
    columns = f"SELECT count(*) FROM information_schema.columns WHERE column_name = 'added_{SESSION}'"  # noqa: S608
    add(app, "Before Migration")
    # No migration to apply: no backup is needed, so an unwritable folder does not matter.
    plain = app.make("deploy", REVISION="v2", BACKUP_DIR="/proc/nowhere")
    assert plain.returncode == 0 and "back up" not in plain.stdout, plain.stdout + plain.stderr
    assert revision() == "v2"

    latest = max(p.stem for p in (app.dir / "app/migrations").glob("0*.py"))
    migration = app.dir / f"app/migrations/0999_added_{SESSION}.py"
    migration.write_text(MIGRATION.format(latest=latest, column=f"added_{SESSION}"))
    try:
        failed = app.make("deploy", REVISION="v3", BACKUP_DIR="/proc/nowhere")
        assert failed.returncode != 0
        assert one_line_error(failed) == (
            "deploy: error: the backup before v3's migrations failed: cannot create or write /proc/nowhere;"
            f" {app.name}:v2 still serves, untouched"
        )
        assert revision() == "v2" and app.cluster.psql(columns, database=app.database) == "0"

        deployed_v3 = app.make("deploy", REVISION="v3")
        assert deployed_v3.returncode == 0, deployed_v3.stdout + deployed_v3.stderr
        assert "--> back up the database: v3 has migrations it lacks" in deployed_v3.stdout
    finally:
        migration.unlink()
    [before] = app.backups.glob("*-v2-before-v3.dump")
    assert revision() == "v3" and app.cluster.psql(columns, database=app.database) == "1"
    add(app, "After Migration")

    # The way back (README, rollbacks): the code first, then the data from the backup before it.
    assert app.make("rollback").returncode == 0 and revision() == "v2"
    restored = app.make("restore", f"FILE={before.name}")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    body = wait_for(lambda: served(app), timeout=90, what="the site to serve again")
    assert "Before Migration" in body and "After Migration" not in body
    assert app.cluster.psql(columns, database=app.database) == "0"  # the schema before v3


def test_make_up_backs_up_before_migrations_too_and_a_failing_backup_stops_it(deployed):
    app = deployed
    revision = lambda: app.nginx.request("/")[1]["X-Revision"]  # noqa: E731
    before = revision()
    latest = max(p.stem for p in (app.dir / "app/migrations").glob("0*.py"))
    migration = app.dir / f"app/migrations/0999_upped_{SESSION}.py"
    migration.write_text(MIGRATION.format(latest=latest, column=f"upped_{SESSION}"))
    try:
        failed = app.make("up", REVISION="v4", BACKUP_DIR="/proc/nowhere")
        assert failed.returncode != 0
        assert one_line_error(failed) == "backup: error: cannot create or write /proc/nowhere"
        assert revision() == before  # nothing was started: the old container serves on
        upped = app.make("up", REVISION="v4")
        assert upped.returncode == 0, upped.stdout + upped.stderr
    finally:
        migration.unlink()
    assert "make up: the new image has migrations the database lacks: a backup first" in upped.stdout
    assert len(list(app.backups.glob(f"*-{before}-before-v4.dump"))) == 1
    assert wait_for(lambda: revision() == "v4", timeout=60, what="v4 to serve")
