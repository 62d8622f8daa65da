"""Point-in-time recovery with the shipped pgBackRest files (postgresql/pgbackrest.conf, pitr.conf) on
a throwaway cluster, changed only in its paths and port: rows written, a mistaken DELETE, recovery to
just before it, the rows back."""

import re
import shutil
import subprocess
import time

import pytest

from tests.harness.backup import admin_role
from tests.harness.pg import Cluster
from tests.harness.pgbouncer import rules
from tests.harness.stack import wait_for


def pgbackrest(cluster, config, *args):
    """pgbackrest as the cluster's owner (postgres), as the shipped archive_command runs it."""
    return cluster._run("pgbackrest", f"--config={config}", "--stanza=main", *args)


@pytest.fixture
def archived(tmp_path):
    """A cluster archiving its WAL into a pgBackRest repository, with one full backup taken."""
    if not shutil.which("pgbackrest"):
        pytest.skip("pgbackrest is not installed: run .ci/provision")
    cluster = Cluster(listen=()).start()
    try:
        admin_role(cluster)  # pgBackRest logs in as the OS user postgres, the superuser, as on Debian
        repo = cluster.root / "repo"
        config = cluster.root / "pgbackrest.conf"
        text = "\n".join(rules("postgresql/pgbackrest.conf")) + "\n"
        for pattern, value in {
            r"repo1-path=.*": f"repo1-path={repo}",
            r"pg1-path=.*": f"pg1-path={cluster.data}",
            r"pg1-socket-path=.*": f"pg1-socket-path={cluster.socket_dir}",
            r"pg1-port=.*": f"pg1-port={cluster.port}",
        }.items():
            text, count = re.subn(pattern, value, text)
            assert count == 1, pattern
        paths = f"log-path={cluster.root}\nlock-path={cluster.root}/lock\nspool-path={cluster.root}\n"
        config.write_text(text.replace("[global]\n", f"[global]\n{paths}"))
        pitr = "\n".join(rules("postgresql/pitr.conf")).replace(
            "pgbackrest ", f"pgbackrest --config={config} "
        )
        with open(cluster.data / "postgresql.conf", "a") as conf:
            conf.write(pitr + "\n")
        subprocess.run(["chown", "-R", "postgres:", repo.parent], check=False)  # the repository is postgres'
        cluster.pg_ctl("restart")
        pgbackrest(cluster, config, "stanza-create")
        pgbackrest(cluster, config, "backup", "--type=full")
        time.sleep(1.1)  # pgBackRest picks a backup that ended before the target, in whole seconds
        yield cluster, config
    finally:
        cluster.stop()


@pytest.mark.slow  # two restarts, a full backup and a restore: about 10 s
def test_a_mistaken_delete_is_undone_by_recovery_to_just_before_it(archived):
    cluster, config = archived
    cluster.psql("CREATE TABLE orders (id int PRIMARY KEY, item text)")
    cluster.psql("INSERT INTO orders SELECT i, 'item ' || i FROM generate_series(1, 1000) i")
    before = cluster.psql("SELECT clock_timestamp()")  # what the operator reads off the log: "just before"
    time.sleep(1.2)
    cluster.psql("DELETE FROM orders WHERE id > 10")  # the mistake: a WHERE that was meant to be id < 10
    cluster.psql("INSERT INTO orders VALUES (2000, 'after the mistake')")
    assert cluster.psql("SELECT count(*) FROM orders") == "11"
    pgbackrest(cluster, config, "check")  # switches WAL and waits until it is archived

    cluster.pg_ctl("stop")
    target = f"--target={before}"
    pgbackrest(cluster, config, "restore", "--delta", "--type=time", target, "--target-action=promote")
    cluster.pg_ctl("start")  # returns once it reads (hot standby); it promotes at the target
    promoted = lambda: cluster.psql("SELECT pg_is_in_recovery()") == "f"  # noqa: E731
    wait_for(promoted, timeout=60, what="recovery to promote")  # then the site can write again
    assert cluster.psql("SELECT count(*), max(id) FROM orders") == "1000|1000"  # all back, nothing after
