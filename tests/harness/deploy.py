"""A clone deployed the way the README's VPS guide does it, for `make deploy` / `make rollback`:
brought up by `make up` (slot a, revision v1), the project's nginx site in front, and the deploy
tooling pointed at that nginx (NGINX, NGINX_UPSTREAM) as it would be at /etc/nginx. Shared by the
deploy tests and the deploy benchmark."""

import contextlib
import os

from tests.harness import Nginx, Stack, free_port, record_build, run, site_env
from tests.harness.stack import free_subnet


@contextlib.contextmanager
def deployed_site(root, cluster, name, database):
    """Yields the Stack, with .nginx (started), .cluster, .database and .make(target, **env)."""
    cluster.psql(f'CREATE DATABASE "{database}" OWNER "{cluster.user}"', database="postgres")
    app = Stack(root, name, own_image=True)
    app.nginx = nginx = Nginx(root, app)
    app.cluster, app.database = cluster, database
    env = dict(DB_NAME=database, COMPOSE_PROJECT_NAME=app.name, APP_PORT_B=free_port())
    app.write_env(site_env(cluster, nginx.https_port, APP_SUBNET_B=free_subnet(), **env))
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
        nginx.start()
        yield app
    finally:
        nginx.stop()
        run(["scripts/deploy.sh", "down"], cwd=app.dir, env=tools, check=False)
        repo = app.image.rsplit(":", 1)[0]
        images = run(["docker", "image", "ls", repo, "--format", "{{.Repository}}:{{.Tag}}"]).stdout.split()
        run(["docker", "image", "rm", "--force", *images], check=False)
        cluster.psql(f'DROP DATABASE "{database}" WITH (FORCE)', database="postgres")
