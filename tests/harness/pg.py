"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, started on a free
port, removed afterwards. Used when the DB_* variables do not point at a running server.

initdb refuses to run as root, so as root the server runs as the unprivileged `postgres` user
(Debian's postgresql package creates it).
"""

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.harness.net import free_port


def _bin(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(
            f"{name} not found: install PostgreSQL's server package (apt-get install postgresql)"
        )
    return candidates[-1]


def reachable(host, port, timeout=1.0):
    if host.startswith("/"):
        return os.path.exists(os.path.join(host, f".s.PGSQL.{port}"))
    try:
        with socket.create_connection((host or "localhost", port), timeout=timeout):
            return True
    except OSError:
        return False


class Cluster:
    """One PostgreSQL server with one superuser, `user`, who owns database `name`."""

    def __init__(self, listen=("127.0.0.1",), port=None, hba_networks=(), socket_mode="0777"):
        self.listen = list(listen)
        self.port = port or free_port()
        self.hba_networks = list(hba_networks)  # extra client networks (e.g. a Docker bridge subnet)
        self.socket_mode = socket_mode
        self.user, self.name, self.password = "sitekit", "sitekit", secrets.token_urlsafe(16)
        self.root = Path(tempfile.mkdtemp(prefix="pgtest-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "postgres.log"
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _run(self, *argv, check=True, **kwargs):
        if self._owner:
            argv = ("runuser", "-u", "postgres", "--", *argv)
        result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
        if check and result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[-1]} failed: {result.stderr.strip() or result.stdout.strip()}\n{log}")
        return result

    def start(self):
        self.socket_dir.mkdir()
        self.root.chmod(0o755)  # the socket directory must be reachable by clients of other users
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password)
        if self._owner:
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            _bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        pwfile.unlink()
        with open(self.data / "pg_hba.conf", "a") as hba:
            for network in self.hba_networks:
                hba.write(f"host all all {network} scram-sha-256\n")
        # In postgresql.conf, not on the command line, so pg_ctl restarts keep them (fault tests).
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '{','.join(self.listen)}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                f"unix_socket_permissions = {self.socket_mode}\n"
                # Throwaway data: durability buys nothing here and costs seconds per test run.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        self.pg_ctl("start")
        self.psql(f'CREATE DATABASE "{self.name}" OWNER "{self.user}"', database="postgres")
        return self

    def psql(self, sql, database=None):
        """Run SQL as the superuser over the socket; returns psql's unaligned output."""
        env = {**os.environ, "PGPASSWORD": self.password}
        argv = [
            "psql",
            "-X",
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database or self.name,
            "-c",
            sql,
        ]
        return subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout.strip()

    def pg_ctl(self, action, check=True):
        """start / stop / status of the server (fault tests stop and restart it); waits until done."""
        argv = [_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-m", "fast", action]
        return self._run(*argv, check=check)

    def env(self, host="127.0.0.1"):
        """DB_* variables that point the site at this cluster."""
        return {
            "DB_NAME": self.name,
            "DB_USER": self.user,
            "DB_PASSWORD": self.password,
            "DB_HOST": host,
            "DB_PORT": str(self.port),
        }

    def stop(self):
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
                self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
