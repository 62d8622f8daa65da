"""Backups measured: `make backup` and `make restore` (scripts/backup.sh, restore.sh) on a
generated database of about --mib MiB (1024 by default), against the disk's own sequential rate
measured in the same run (O_DIRECT, so no page cache flatters it), and the dump's size against the
database's. The database is a throwaway cluster on the site's recommended path (socket, peer as
the container's uid), with durability on as on a VPS. Needs no Docker: no container serves while it runs.

    python -m tests.bench.backup [--mib 64]   # a smoke run; make bench runs the full size
"""

import argparse
import contextlib
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import REPO, run
from tests.harness.backup import admin_role
from tests.harness.envfile import example_with
from tests.harness.pgbouncer import peer_database, socket_env

# Rows shaped like the site's listings (app_site): a name, a unique URL, 128 characters that compress
# about as text does, a flag, a time.
SCHEMA = """CREATE TABLE listing (id bigserial PRIMARY KEY, name text NOT NULL, url text NOT NULL UNIQUE,
  description text NOT NULL, approved boolean NOT NULL, created timestamptz NOT NULL DEFAULT now())"""
FILL = """INSERT INTO listing (name, url, description, approved)
  SELECT 'Site ' || i, 'https://site-' || i || '.example.org/',
    md5(i::text) || md5((-i)::text) || md5((i * 7)::text) || md5((i * 13)::text), i % 3 > 0
  FROM generate_series({start}, {stop}) i"""
ROWS_PER_MIB = 2600  # measured: rows, their index and the URL index, per MiB of database


def disk_rate(folder, mib):
    """Sequential write and read of `mib` MiB in `folder`, MB/s, bypassing the page cache."""
    probe = Path(folder) / "disk-probe"
    rates = []
    for argv in (
        ["dd", "if=/dev/zero", f"of={probe}", "bs=4M", f"count={max(1, mib // 4)}", "oflag=direct"],
        ["dd", f"if={probe}", "of=/dev/null", "bs=4M", "iflag=direct"],
    ):
        out = run(argv).stderr
        copied, took = re.search(r"^(\d+) bytes .*, ([\d.]+) s, ", out, re.M).groups()
        rates.append(int(copied) / float(took))
    probe.unlink()
    return [rate / 1e6 for rate in rates]


def timed(argv, cwd):
    started = time.monotonic()
    result = run(argv, cwd=cwd, check=False, timeout=7200)
    assert result.returncode == 0, result.stdout + result.stderr
    return time.monotonic() - started, result.stdout


def measure(mib):
    root = Path(tempfile.mkdtemp(prefix="sitekit-bench-backup-"))
    cluster = admin_role(peer_database("www-data"))  # backup.sh dumps as APP_UID: unset, 33 (www-data)
    try:
        with open(cluster.data / "postgresql.conf", "a") as conf:  # durable, as a VPS's server is
            conf.write("fsync = on\nsynchronous_commit = on\nfull_page_writes = on\nmax_wal_size = 4GB\n")
        cluster.pg_ctl("restart")
        clone = root / "clone"
        shutil.copytree(REPO / "scripts", clone / "scripts")
        env = {**socket_env(cluster), "BACKUP_DIR": str(root / "backups")}
        (clone / ".env").write_text(example_with(env))
        cluster.psql(SCHEMA)
        rows, step = mib * ROWS_PER_MIB, 200_000
        for start in range(1, rows + 1, step):
            cluster.psql(FILL.format(start=start, stop=min(rows, start + step - 1)))
        cluster.psql("VACUUM ANALYZE listing")
        size = int(cluster.psql("SELECT pg_database_size(current_database())"))
        write, read = disk_rate(root, min(mib, 1024))
        backup_s, _ = timed(["scripts/backup.sh", "backup"], clone)
        [dump] = (root / "backups").glob("*.dump")
        restore_s, _ = timed(["scripts/restore.sh", "restore"], clone)
        return size, dump.stat().st_size, write, read, backup_s, restore_s
    finally:
        cluster.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="the generated database's size (default 1024)")
    size, dumped, write, read, backup_s, restore_s = measure(parser.parse_args().mib)
    mb = size / 1e6
    print("| Backups (scripts/backup.sh, restore.sh) | measured |")
    print("|---|---|")
    print(f"| database (pg_database_size) | {mb:,.0f} MB |")
    print(f"| disk, sequential write / read (dd, O_DIRECT) | {write:,.0f} / {read:,.0f} MB/s |")
    print(f"| `make backup` (pg_dump -Fc, checksum) | {backup_s:.1f} s: {mb / backup_s:,.0f} MB/s |")
    print(f"| dump size | {dumped / 1e6:,.0f} MB ({dumped / size:.0%} of the database) |")
    print(f"| `make restore` (new database, swap) | {restore_s:.1f} s: {mb / restore_s:,.0f} MB/s |")
    ratios = f"{mb / backup_s / write:.2f}×, {mb / restore_s / write:.2f}×"
    print(f"| backup, restore throughput against the disk's write rate | {ratios} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
