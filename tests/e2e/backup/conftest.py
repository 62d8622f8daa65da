"""The backup tests' one site, shared by the files in this folder in file order (test_backup.py
first, then test_restore.py): on the socket path as the VPS guide sets it up, its own account
(the container's uid) and peer authentication, the host's superuser `postgres` (Debian's own first
pg_hba line) to create and rename databases."""

import pytest

from tests.harness import SESSION, Nginx, Stack, envfile, site_env
from tests.harness.backup import admin_role
from tests.harness.pgbouncer import peer_database, socket_env

ACCOUNT = f"sitekit-backup-{SESSION}"  # `sudo make account` names it like the stack's SITE


@pytest.fixture(scope="package")
def db(docker):
    cluster = admin_role(peer_database(ACCOUNT))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="package")
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
    with app.serving_as_its_account():
        yield app
