"""Backups (make backup / backups / restore: scripts/backup.sh and restore.sh) on the real stack:
rows written by the site's own code, backed up, the database dropped, restored and served through
nginx again; bad files refused with nothing touched; retention, the off-host copy, a full disk, the
timer and cron line."""

import datetime
import hashlib
import os
import re
import shutil
import subprocess

from tests.e2e.backup.steps import add, make, newest, one_line_error, served
from tests.harness import run, wait_for


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
