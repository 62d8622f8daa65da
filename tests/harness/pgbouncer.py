"""The recommended database paths on this machine, set up from the project's own host files:
PostgreSQL over its unix socket with peer authentication (postgresql/pg_hba.conf, pg_ident.conf)
and pgbouncer in front of it (pgbouncer/), each file changed only in its paths and port.

Both sockets live in the cluster's socket directory, which a stack mounts as /var/run/postgresql
(DB_SOCKET_DIR), so DB_PORT alone picks PostgreSQL or pgbouncer, as on the VPS.
"""

import getpass
import re
import shutil
import subprocess
from pathlib import Path

from tests.harness.net import free_port
from tests.harness.pg import Cluster
from tests.harness.stack import REPO, run, wait_for


def rules(path):
    """A shipped snippet's lines without comments: what an operator pastes in."""
    return [
        line for line in (REPO / path).read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def as_account(line, column, account):
    """A shipped line whose column (pg_ident's SYSTEM-USERNAME, pgbouncer's USER) names the site's
    account: named `account` instead of sitekit, as an operator with another SITE writes it."""
    fields = line.split()
    if line.startswith("#") or len(fields) <= column or fields[column] != "sitekit":
        return line
    return " ".join([*fields[:column], account, *fields[column + 1 :]])


def allow_peer(cluster, account="sitekit"):
    """The site's lines from postgresql/ in a started cluster: first in pg_hba.conf (above initdb's
    password lines, as above Debian's `local all all peer`), and the pg_ident.conf map for the
    site's account (make account: named like the stack's SITE)."""
    hba = cluster.data / "pg_hba.conf"
    hba.write_text("\n".join(rules("postgresql/pg_hba.conf")) + "\n" + hba.read_text())
    # The harness administers the cluster as the site's role over the same socket (Cluster.psql).
    ident = [as_account(line, 1, account) for line in rules("postgresql/pg_ident.conf")]
    ident.append(f"sitekit {getpass.getuser()} sitekit")
    with open(cluster.data / "pg_ident.conf", "a") as conf:
        conf.write("\n".join(ident) + "\n")
    cluster.pg_ctl("reload")
    return cluster


def peer_database(account="sitekit"):
    """A started cluster listening on no TCP address at all, peer authentication for the site."""
    return allow_peer(Cluster(listen=()).start(), account)


def socket_env(cluster, port=None, user="sitekit"):
    """DB_* for a stack on the socket path: no password, the cluster's socket directory mounted."""
    return {
        "DB_NAME": cluster.name,
        "DB_USER": user,
        "DB_PASSWORD": None,  # removed from .env: peer asks for none
        "DB_HOST": "/var/run/postgresql",
        "DB_PORT": str(port or cluster.port),
        "DB_SOCKET_DIR": str(cluster.socket_dir),
    }


class Pgbouncer:
    """pgbouncer/pgbouncer.ini, pg_hba.conf and userlist.txt, run as postgres (as Debian's service
    does) with its socket beside the cluster's."""

    def __init__(self, cluster, account="sitekit"):
        self.cluster = cluster
        self.dir = cluster.root / "pgbouncer"
        self.dir.mkdir()
        self.port = free_port()
        self.ini = self.dir / "pgbouncer.ini"
        self.log = self.dir / "pgbouncer.log"
        self.pidfile = self.dir / "pgbouncer.pid"
        text = (REPO / "pgbouncer/pgbouncer.ini").read_text()
        replacements = {
            r"host=/var/run/postgresql port=5432": f"host={cluster.socket_dir} port={cluster.port}",
            r"listen_port = 6432": f"listen_port = {self.port}",
            r"unix_socket_dir = /var/run/postgresql": f"unix_socket_dir = {cluster.socket_dir}",
            r"/etc/pgbouncer/": f"{self.dir}/",
            r"/var/log/postgresql/pgbouncer\.log": str(self.log),
            r"/var/run/postgresql/pgbouncer\.pid": str(self.pidfile),
        }
        for pattern, replacement in replacements.items():
            text, count = re.subn(pattern, replacement, text)
            assert count, f"pgbouncer/pgbouncer.ini no longer contains {pattern!r}: update {__file__}"
        self.ini.write_text(text)
        hba = (REPO / "pgbouncer/pg_hba.conf").read_text().splitlines()
        (self.dir / "pg_hba.conf").write_text("\n".join(as_account(line, 2, account) for line in hba) + "\n")
        users = (REPO / "pgbouncer/userlist.txt").read_text()
        (self.dir / "userlist.txt").write_text(users.replace('"sitekit"', f'"{account}"'))
        shutil.chown(self.dir, "postgres", "postgres")
        for path in self.dir.iterdir():
            shutil.chown(path, "postgres", "postgres")

    def start(self):
        run(["runuser", "-u", "postgres", "--", "pgbouncer", "--daemon", str(self.ini)])
        socket = Path(self.cluster.socket_dir) / f".s.PGSQL.{self.port}"
        wait_for(socket.exists, timeout=10, interval=0.1, what="pgbouncer's socket")
        return self

    def admin(self, command):
        """A command on pgbouncer's admin console (SHOW POOLS, ...), as postgres over its socket."""
        argv = ["psql", "-X", "-qAt", "-F", "|", "-h", str(self.cluster.socket_dir), "-p", str(self.port)]
        argv += ["-U", "postgres", "-d", "pgbouncer", "-c", command]
        return run(["runuser", "-u", "postgres", "--", *argv]).stdout.strip()

    def stop(self):
        if self.pidfile.exists():
            pid = self.pidfile.read_text().strip()
            subprocess.run(["kill", "-INT", pid], capture_output=True)  # the one process started here
            wait_for(lambda: not self.pidfile.exists(), timeout=10, interval=0.1, what="pgbouncer to stop")
