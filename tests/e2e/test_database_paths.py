"""The three ways to the database, each proven with a page read from PostgreSQL through nginx:
the unix socket with peer authentication (the recommended VPS path: no password, no TCP port, the
container as the site's own account, which no other host account can stand in for),
pgbouncer on the same socket mount (the fast path, session pooling), and TCP with SCRAM (a database
on another machine; the session's shared stack runs that way). The host files are the project's
own (postgresql/, pgbouncer/), changed only in paths and ports (tests/harness/pgbouncer.py)."""

import datetime
import ipaddress
import json
import re
import subprocess

import pytest

from tests.harness import SESSION, Nginx, Stack, envfile, run, site_env, wait_for
from tests.harness.pgbouncer import Pgbouncer, peer_database, socket_env

ROW = "Served Over The Socket"
ACCOUNT = f"sitekit-socket-{SESSION}"  # `sudo make account` names it like the stack's SITE


def client(stack, sql, *extra_env):
    """One query through the site's own Django connection, in the container as its user."""
    code = (
        f"from django.db import connection\nc = connection.cursor()\nc.execute({sql!r})\nprint(c.fetchall())"
    )
    env = [arg for pair in extra_env for arg in ("-e", pair)]
    argv = ["docker", "exec", *env, stack.container(), "python", "manage.py", "shell", "-v", "0", "-c", code]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def peer_db(docker):
    """PostgreSQL with the site's peer lines, no TCP listener; pgbouncer beside it on the socket."""
    cluster = peer_database(ACCOUNT)
    cluster.bouncer = Pgbouncer(cluster, ACCOUNT).start()
    yield cluster
    cluster.bouncer.stop()
    cluster.stop()


@pytest.fixture(scope="module")
def socket_stack(e2e_root, stack, peer_db):
    """The shipped compose file with .env as the VPS guide writes it: DB_HOST=/var/run/postgresql,
    no DB_PASSWORD, the host's socket directory (here the cluster's) in DB_SOCKET_DIR, and the
    container's uid the site's own account (`sudo make account`)."""
    app = Stack(e2e_root, "sitekit-socket", image=stack.image)
    assert app.name == ACCOUNT
    app.nginx = Nginx(e2e_root, app)
    app.write_env(site_env(peer_db, app.nginx.https_port, **socket_env(peer_db)))
    with app.serving_as_its_account():
        yield app


def test_socket_and_peer_serve_the_site_with_no_password_and_no_tcp(socket_stack, peer_db):
    assert "DB_PASSWORD" not in envfile.parse((socket_stack.dir / ".env").read_text())
    assert peer_db.psql("SHOW listen_addresses") == ""  # PostgreSQL has no TCP port at all
    socket_stack.manage(
        "shell", "-c",
        f"from app.models import Site; Site.objects.create(name={ROW!r}, url='https://socket.example.org',"
        " description='Written over the socket').approve()",
    )  # fmt: skip
    status, _, body = socket_stack.nginx.request("/")
    assert status == 200
    assert ROW in body
    seen = client(socket_stack, "SELECT current_user, inet_client_addr()")
    assert seen.stdout.strip() == "[('sitekit', None)]", seen.stderr  # the site's role, over a socket


def test_peer_checks_who_connects(socket_stack):
    """The control: over the same socket, a uid other than the site's account is refused, in one line."""
    argv = [
        "docker",
        "exec",
        "-u",
        "65534",
        socket_stack.container(),
        "python",
        "manage.py",
        "check_database",
    ]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2  # misconfigured: the entrypoint stops instead of retrying
    [line] = refused.stderr.splitlines()
    assert "via socket /var/run/postgresql/.s.PGSQL." in line
    assert 'Peer authentication failed for user "sitekit"' in line
    assert "runs as uid 65534 (APP_UID); pg_ident.conf must map the host's name for it" in line


def as_host_user(user, *argv):
    return run(["runuser", "-u", user, "--", *argv], check=False)


def psql_as(user, cluster, role, port=None):
    """SELECT 1 over the socket as a host account, asking for a role (peer: the kernel names the caller)."""
    argv = ["psql", "-X", "-qAt", "-h", str(cluster.socket_dir), "-p", str(port or cluster.port)]
    return as_host_user(user, *argv, "-U", role, "-d", "sitekit", "-c", "SELECT 1")


def test_the_container_runs_as_the_sites_own_account(socket_stack):
    uid, gid = (int(socket_stack.account[key]) for key in ("APP_UID", "APP_GID"))
    assert run(["id", "-u", ACCOUNT]).stdout.strip() == str(uid) and uid not in (0, 33)
    assert socket_stack.inspect("{{.Config.User}}") == f"{uid}:{gid}"
    with open(f"/proc/{socket_stack.server_pid()}/status") as status:
        ids = {line.split(":")[0]: line.split()[1:] for line in status if line.startswith(("Uid:", "Gid:"))}
    assert ids == {"Uid": [str(uid)] * 4, "Gid": [str(gid)] * 4}


def test_www_data_on_the_host_can_neither_be_the_sites_role_nor_write_its_files(socket_stack, peer_db):
    """www-data also runs nginx's workers, PHP and Apache on Debian/Ubuntu: none of them may read the
    site's password hashes and sessions, nor put script in the files nginx serves."""
    bouncer = peer_db.bouncer.port
    assert psql_as(ACCOUNT, peer_db, "sitekit").stdout.strip() == "1"  # the contrast: the site's account
    assert psql_as(ACCOUNT, peer_db, ACCOUNT, port=bouncer).stdout.strip() == "1"
    refused = psql_as("www-data", peer_db, "sitekit")
    assert refused.returncode != 0 and 'Peer authentication failed for user "sitekit"' in refused.stderr
    for role in ("sitekit", ACCOUNT, "www-data"):  # through pgbouncer, whatever name it gives
        refused = psql_as("www-data", peer_db, role, port=bouncer)
        assert refused.returncode != 0 and "login rejected" in refused.stderr, (role, refused.stderr)
    [theme] = socket_stack.static.glob("admin/js/theme.*.js")
    name, clean = theme.relative_to(socket_stack.static).as_posix(), theme.read_text()
    for argv in (
        ["sh", "-c", 'echo "alert(1)" >>"$0"', theme],
        ["touch", socket_stack.static / "admin/js/new.js"],
        ["mv", theme, socket_stack.static / "moved.js"],
    ):
        denied = as_host_user("www-data", *argv)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, argv
    modes = {path.stat().st_mode & 0o777 for path in socket_stack.static.rglob("*") if not path.is_symlink()}
    assert modes <= {0o644, 0o755}, modes  # readable by all, writable by the site's account alone
    assert socket_stack.nginx.request(f"/static/{name}")[::2] == (200, clean)  # nginx (www-data) still reads


def docker_time(text):
    """Docker's RFC 3339 time (JSON) with nanoseconds, as a datetime (to the microsecond)."""
    text = json.loads(text)
    return datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00"))


def test_after_a_reboot_either_start_order_connects(socket_stack, peer_db):
    """PostgreSQL up before Docker made the network: with nothing to bind on docker0 it has nothing
    to miss. Container up before PostgreSQL: it waits for the socket, then serves; no restart by hand."""
    network = f"{socket_stack.name}_default"
    created = docker_time(run(["docker", "network", "inspect", "-f", "{{json .Created}}", network]).stdout)
    started = datetime.datetime.fromisoformat(peer_db.psql("SELECT pg_postmaster_start_time()"))
    assert started < created
    assert socket_stack.nginx.request("/")[0] == 200

    peer_db.pg_ctl("stop")
    try:
        socket_stack.compose("restart", "app")
        waiting = lambda: "is unreachable" in socket_stack.logs()  # noqa: E731
        wait_for(waiting, timeout=60, what="the entrypoint to wait for the database")
        assert "No such file or directory" in socket_stack.logs()
    finally:
        peer_db.pg_ctl("start")
    restarted_at = socket_stack.state()["StartedAt"]
    wait_for(lambda: socket_stack.nginx.request("/")[0] == 200, timeout=90, what="the site to serve again")
    assert ROW in socket_stack.nginx.request("/")[2]
    assert socket_stack.state()["StartedAt"] == restarted_at  # the same start waited, then served


def pgbouncer_counts(bouncer):
    log = bouncer.log.read_text()
    return log.count("login attempt: db=sitekit"), log.count("new connection to server")


def through_pgbouncer(socket_stack, peer_db):
    """The socket stack switched to pgbouncer, with a 2 s statement timeout (`up` changes nothing
    when it already runs so, so each test may call it whatever ran before)."""
    env = socket_env(
        peer_db, port=peer_db.bouncer.port, user=ACCOUNT
    )  # the guide: DB_PORT, DB_USER=<account>
    socket_stack.write_env(site_env(peer_db, socket_stack.nginx.https_port, **env, DB_STATEMENT_TIMEOUT="2"))
    socket_stack.up()


def test_pgbouncer_serves_the_site_on_a_few_pooled_server_connections(socket_stack, peer_db):
    bouncer = peer_db.bouncer
    through_pgbouncer(socket_stack, peer_db)
    # Migrated at start through pgbouncer under the advisory lock, which went with the session.
    assert peer_db.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == "0"
    logins, servers = pgbouncer_counts(bouncer)
    for _ in range(20):
        status, _, body = socket_stack.nginx.request("/")
        assert status == 200 and ROW in body
    after_logins, after_servers = pgbouncer_counts(bouncer)
    assert after_logins - logins >= 20  # every request connected anew, to pgbouncer
    assert after_servers - servers <= 2  # and was handed a server connection already open
    seen = client(socket_stack, "SELECT current_user, inet_client_addr()")
    assert seen.stdout.strip() == "[('sitekit', None)]", seen.stderr


def test_session_pooling_keeps_session_state_and_resets_it_between_clients(socket_stack, peer_db):
    # statement_timeout is SET per connection (app/database.py): it applies through pgbouncer.
    assert client(socket_stack, "SHOW statement_timeout").stdout.strip() == "[('2s',)]"
    # A client that changes a setting and takes migrate's advisory lock, then goes away without
    # undoing either (a migrate killed halfway). The next client gets the same server connection,
    # clean: session pooling runs DISCARD ALL on release. Transaction pooling would hand it over
    # with the setting and the lock still held, and every later migrate would wait forever.
    code = (
        "from django.db import connection\n"
        "from app.management.commands.migrate import MIGRATE_LOCK_ID\n"
        "def run(sql, *args):\n    c = connection.cursor(); c.execute(sql, args); return c.fetchone()\n"
        "connection.cursor().execute('SET work_mem = \\'77MB\\'')\n"
        "first = run('SELECT pg_backend_pid()')[0]\n"
        "run('SELECT pg_advisory_lock(%s)', MIGRATE_LOCK_ID)\n"
        "connection.close()\n"
        "print(first == run('SELECT pg_backend_pid()')[0], run('SHOW work_mem')[0])"
    )
    out = socket_stack.manage("shell", "-v", "0", "-c", code).stdout.strip()
    assert out == "True 4MB"  # the same server connection, with PostgreSQL's default again
    assert peer_db.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == "0"


def test_a_search_past_the_statement_timeout_gets_a_page_that_says_so(socket_stack, peer_db):
    """Through nginx, pgbouncer and PostgreSQL: a query stuck behind a lock is cancelled after
    DB_STATEMENT_TIMEOUT (2 s here) and the visitor reads why; the site then serves normally."""
    through_pgbouncer(socket_stack, peer_db)
    lock = "BEGIN; LOCK TABLE app_site IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)"
    holder = subprocess.Popen(
        ["psql", "-X", "-h", str(peer_db.socket_dir), "-p", str(peer_db.port), "-U", "sitekit", "-c", lock],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    held = "SELECT pid FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'app_site'::regclass"
    try:
        pid = wait_for(lambda: peer_db.psql(held), timeout=20, interval=0.1, what="the table lock")
        status, headers, body = socket_stack.nginx.request("/?q=slow")
    finally:
        if "pid" in locals():
            peer_db.psql(f"SELECT pg_terminate_backend({pid})")
        holder.wait(timeout=30)
    assert status == 503
    assert "That took too long" in body and "after 2 seconds" in body
    assert headers["Retry-After"]
    assert socket_stack.nginx.request("/")[0] == 200


def test_tcp_with_scram_for_a_database_on_another_machine(stack, host_db):
    """The session's shared stack: DB_HOST a host name, a password, SCRAM (the cluster's only TCP
    method), from the subnet Docker gave the stack's network; its pages are read from PostgreSQL."""
    environment = json.loads(stack.inspect("{{json .Config.Env}}"))
    assert "DB_HOST=host.docker.internal" in environment
    assert any(item.startswith("DB_PASSWORD=") for item in environment)
    assert (
        host_db.psql("SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'")
        == "scram-sha-256"
    )
    stack.manage(
        "shell", "-c",
        "from app.models import Site; Site.objects.create(name='Served Over TCP', url='https://tcp.example.org',"
        " description='Written over TCP').approve()",
    )  # fmt: skip
    status, _, body = stack.nginx.request("/")
    assert status == 200 and "Served Over TCP" in body
    seen = client(stack, "SELECT inet_client_addr()").stdout
    address = re.search(r"'([\d.]+)'", seen).group(1)
    assert ipaddress.ip_address(address) in ipaddress.ip_network(stack.subnet)
