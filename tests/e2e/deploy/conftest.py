"""The deploy tests' one clone, shared by the files in this folder (test_deploy.py first, then
test_refusals.py, then test_registry.py): `make up` once, its own image built once."""

import pytest

from tests.harness import SESSION
from tests.harness.deploy import deployed_site


@pytest.fixture(scope="package")
def site(e2e_root, host_db):
    """A clone brought up by `make up` (revision v1) with the nginx site in front of it, and
    deploys pointed at that nginx (NGINX, NGINX_UPSTREAM) as they would be at /etc/nginx."""
    with deployed_site(e2e_root, host_db, "sitekit-deploy", f"deploy_{SESSION}") as app:
        yield app
