"""A clone deployed the way the README's VPS guide does it, for `make deploy` / `make rollback`:
brought up by `make up` (revision v1), its nginx site installed by `make nginx-site`, and the deploy
tooling pointed at that nginx (NGINX, NGINX_UPSTREAM) as it would be at /etc/nginx. Shared by the
deploy tests, the several-sites test and the deploy benchmark."""

import contextlib
import os
import socket
from pathlib import Path

from tests.harness import Nginx, Stack, free_port, record_build, run, site_env


def port_pair():
    """A free APP_PORT whose APP_PORT + 1 is free too: a deploy's temporary container takes it."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise AssertionError("no two free consecutive ports")


@contextlib.contextmanager
def deployed_site(root, cluster, name, database, *, domain="localhost", beside=None):
    """Yields the Stack, with .nginx (started unless beside another site's, which serves it after
    a reload), .cluster, .database and .make(target, **env)."""
    cluster.psql(f'CREATE DATABASE "{database}" OWNER "{cluster.user}"', database="postgres")
    app = Stack(root, name, own_image=True)
    app.port = port_pair()
    app.nginx = nginx = Nginx(root, app, domain=domain, beside=beside)
    app.cluster, app.database = cluster, database
    origins = f"https://{domain}:{nginx.https_port}"
    env = site_env(
        cluster, nginx.https_port, DB_NAME=database, ALLOWED_HOSTS=domain, CSRF_TRUSTED_ORIGINS=origins
    )
    env["BACKUP_DIR"] = str(Path(root) / f"backups-{app.name}")  # a deploy's backup before migrations
    app.write_env(env)
    tools = {**os.environ, "NGINX": f"nginx -p {nginx.dir} -c {nginx.dir}/nginx.conf"}
    tools["NGINX_UPSTREAM"] = str(nginx.upstream)

    def make(target, *args, **extra):
        """`make <target>` in the clone, as its operator would run it (as root)."""
        argv = ["make", "-s", target, *args]
        return run(argv, cwd=app.dir, env={**tools, **extra}, check=False, timeout=600)

    app.tools_env, app.make = tools, make
    try:
        result = make("up", REVISION="v1")
        assert result.returncode == 0, result.stdout + result.stderr
        record_build(app.image)
        if beside:
            nginx.nginx("-s", "reload")
        else:
            nginx.start()
        yield app
    finally:
        if not beside:
            nginx.stop()
        for project in (app.name, f"{app.name}-next"):
            run(["docker", "compose", "-p", project, "down", "--timeout", "5"], cwd=app.dir, check=False)
        images = run(
            ["docker", "image", "ls", app.name, "--format", "{{.Repository}}:{{.Tag}}"]
        ).stdout.split()
        run(["docker", "image", "rm", "--force", *images], check=False)
        cluster.psql(f'DROP DATABASE "{database}" WITH (FORCE)', database="postgres")
