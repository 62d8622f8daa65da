"""Lifecycle of the shipped container: restarts, rebuilds, concurrent starts, shutdown, dead workers
(the faults around it are in test_faults.py)."""

import functools
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from tests.harness import Nginx, children, run, site_env, wait_for
from tests.harness.http import status


@pytest.fixture
def new_database(host_db, request):
    """An empty database on the host PostgreSQL, so migrations really run."""
    name = f"life_{request.node.name.lower()[:40]}"
    host_db.psql(f'CREATE DATABASE "{name}" OWNER "{host_db.user}"', database="postgres")
    yield name
    host_db.psql(f'DROP DATABASE "{name}" WITH (FORCE)', database="postgres")


@pytest.fixture
def make_stack(extra_stacks, host_db, new_database):
    """Extra stacks against the shared host PostgreSQL, on a database of the test's own."""
    return functools.partial(extra_stacks, cluster=host_db, DB_NAME=new_database)


def direct(app, path="/healthz"):
    """A request straight to the container's published port (loopback), bypassing nginx."""
    return status(app.port, path, timeout=15)


def home(app):
    """The home page (it reads the app's table) straight from the container, as nginx asks for it."""
    return status(app.port, "/", headers={"X-Forwarded-Proto": "https"}, timeout=15)


SKIPPED = "already prepared for this build and database state: skipping static files and migrations"


def restart(app):
    app.compose("restart")
    wait_for(lambda: app.state()["Health"]["Status"] == "healthy", what="healthy after restart")


def test_a_database_recreated_empty_is_migrated_at_the_next_start(make_stack, host_db, new_database):
    app = make_stack("sitekit-life-recreated")
    app.up()
    assert home(app) == 200
    # The database is lost and recreated empty under the same name (a restore gone wrong, a new
    # server): a marker of "already prepared" would skip migrate and serve "relation does not exist".
    host_db.psql(f'DROP DATABASE "{new_database}" WITH (FORCE)', database="postgres")
    host_db.psql(f'CREATE DATABASE "{new_database}" OWNER "{host_db.user}"', database="postgres")
    restart(app)
    assert home(app) == 200, app.logs()
    assert int(host_db.psql("SELECT count(*) FROM django_migrations", database=new_database)) > 10


def test_a_database_migrated_by_another_version_is_migrated_again_at_the_next_start(make_stack):
    app = make_stack("sitekit-life-other")
    app.up()
    # Another version (a rollback's `migrate app <earlier>`, here all the way back) changed the
    # schema under the same name: this build's marker no longer describes the database.
    app.manage("migrate", "app", "zero")
    restart(app)
    logs = app.logs()
    assert SKIPPED not in logs and logs.count("Applying app.0001_initial... OK") == 2, logs
    assert home(app) == 200


def test_a_restart_of_the_same_build_and_database_skips_static_files_and_migrations(make_stack):
    app = make_stack("sitekit-life-skip")
    app.up()
    published = static_files(app.static)
    [marker] = app.data.glob(".prepared-*")
    restart(app)
    logs = app.logs()
    assert logs.count(SKIPPED) == 1, logs  # said once, by the restart
    assert logs.count("static files: ") == logs.count("Operations to perform") == 1  # the first start's
    assert static_files(app.static) == published
    assert list(app.data.glob(".prepared-*")) == [marker]
    assert home(app) == 200
    # The public folder emptied (old versions' files cleaned out, a new host): published again.
    for path in app.static.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    restart(app)
    assert app.logs().count("static files: ") == 2
    assert static_files(app.static).keys() == published.keys()


def test_a_new_build_publishes_its_static_files_and_migrates_again(make_stack):
    app = make_stack("sitekit-life-build", own_image=True)
    app.compose("build")
    app.up()
    restart(app)
    assert app.logs().count(SKIPPED) == 1  # the same build: nothing to do
    (app.dir / "app/static/site/new-in-this-build.txt").write_text("a file only the new build has")
    app.compose("build")
    app.up()  # recreates the container from the new image
    logs = app.logs()  # the new container's alone
    assert SKIPPED not in logs and "Operations to perform" in logs, logs
    assert (app.static / "site/new-in-this-build.txt").read_text() == "a file only the new build has"
    assert len(list(app.data.glob(".prepared-*"))) == 1  # the old build's marker is gone


def static_files(folder):
    """{relative path: (inode, mtime, size)} of every file under folder, dotfiles included."""
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_two_preparations_at_once_publish_whole_files_and_a_third_rewrites_none(make_stack):
    app = make_stack("sitekit-life-publish")
    app.compose("up", "--no-start")  # the project's network first: two `run`s at once would each make one
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: app.compose("run", "--rm", "app", "prepare", check=False), range(2)))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    # Every file the image collected is in the folder, byte for byte; no temporary file is left.
    listing = "cd /app/collected && find . -type f ! -name staticfiles.json -exec sha256sum {} +"
    image = run(["docker", "run", "--rm", "--entrypoint", "sh", app.image, "-c", listing]).stdout
    expected = {name[2:]: digest for digest, name in (line.split() for line in image.splitlines())}
    published = static_files(app.static)
    [marker] = [name for name in published if name.startswith(".prepared-")]  # never served: a dotfile
    assert set(published) == set(expected) | {marker}
    digests = run(["sha256sum", *expected], cwd=app.static).stdout
    assert {name: digest for digest, name in (line.split() for line in digests.splitlines())} == expected
    # Run again, its marker in ./data gone: files in place are neither rewritten nor replaced (nginx
    # may be serving them).
    for stale in app.data.glob(".prepared-*"):
        stale.unlink()
    app.compose("run", "--rm", "app", "prepare")
    again = static_files(app.static)
    assert again.keys() == published.keys()
    assert {name: again[name] for name in expected} == {name: published[name] for name in expected}


def test_two_containers_starting_at_once_migrate_exactly_once(make_stack, host_db, new_database):
    first, second = make_stack("sitekit-life-race-a"), make_stack("sitekit-life-race-b")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda app: app.up(check=False), (first, second)))
    logs = first.logs() + second.logs()
    assert [r.returncode for r in results] == [0, 0], logs
    assert first.state()["Health"]["Status"] == second.state()["Health"]["Status"] == "healthy"
    assert "already exists" not in logs
    sql = "SELECT count(*) FROM (SELECT app, name FROM django_migrations GROUP BY 1, 2 HAVING count(*) > 1) d"
    assert host_db.psql(sql, database=new_database) == "0"
    assert int(host_db.psql("SELECT count(*) FROM django_migrations", database=new_database)) > 10


def test_stop_lets_an_in_flight_request_finish(make_stack, host_db, new_database):
    app = make_stack("sitekit-life-stop")
    app.nginx = Nginx(app.dir.parent, app)
    app.write_env(site_env(host_db, app.nginx.https_port, DB_NAME=new_database))
    app.up()
    app.nginx.start()
    # A request made slow honestly: the home page's query waits for a table lock held here.
    locker = psycopg2.connect(
        host=str(host_db.socket_dir),
        port=host_db.port,
        user=host_db.user,
        password=host_db.password,
        dbname=new_database,
    )
    waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'app_site'::regclass AND NOT granted"
    answer, stopped = {}, {}
    try:
        locker.cursor().execute("LOCK TABLE app_site IN ACCESS EXCLUSIVE MODE")
        request = threading.Thread(target=lambda: answer.update(status=app.nginx.request("/")[0]))
        request.start()
        wait_for(lambda: host_db.psql(waiting, database=new_database) == "1", what="the request waiting")
        # SIGTERM, then SIGKILL after stop_grace_period (30 s); it returns once the container is gone.
        stop = threading.Thread(target=lambda: stopped.update(result=app.compose("stop", check=False)))
        stop.start()
        wait_for(lambda: "Handling signal: term" in app.logs(), what="gunicorn told to stop")
        assert host_db.psql(waiting, database=new_database) == "1"  # still in flight
    finally:
        locker.rollback()  # the query goes on; the request can finish
        locker.close()
    request.join(timeout=30)
    stop.join(timeout=40)

    assert answer.get("status") == 200, app.logs()
    assert stopped["result"].returncode == 0, stopped["result"].stderr
    state = app.state()
    assert state["Status"] == "exited", state
    assert state["ExitCode"] == 0 and not state["OOMKilled"], state  # SIGKILL would exit 137


def worker_pids(app):
    """gunicorn's workers: the children of its master, read from the host's /proc."""
    return children(app.server_pid())


def test_a_killed_worker_is_replaced_and_the_site_keeps_answering(make_stack):
    app = make_stack("sitekit-life-kill", WEB_CONCURRENCY="3")
    app.up()
    workers = wait_for(lambda: len(worker_pids(app)) == 3 and worker_pids(app), what="three workers")
    victim = sorted(workers)[0]
    run(["kill", "-KILL", victim])
    answers = [direct(app) for _ in range(20)]
    replaced = wait_for(
        lambda: (pids := worker_pids(app)) and len(pids) == 3 and victim not in pids and pids,
        what="a replacement worker",
    )
    assert victim not in replaced
    assert answers == [200] * 20  # the listening socket is the master's: others keep accepting
    assert direct(app) == 200
    assert app.state()["Restarting"] is False and app.inspect("{{.RestartCount}}") == "0"
