"""The shipped stack serves the site: compose + the host nginx + host PostgreSQL, as on a VPS."""

import re
from pathlib import Path


def test_home_page_shows_a_site_read_from_postgresql(stack):
    stack.manage(
        "shell",
        "-c",
        "from app.models import Site; "
        "Site.objects.create(name='Served From Postgres', url='https://e2e.example.org',"
        " description='A row written in the test').approve()",
    )
    status, headers, body = stack.nginx.request("/")
    assert status == 200
    assert "Served From Postgres" in body
    assert headers["Server"].startswith("nginx")


def test_hashed_css_comes_from_nginx_with_an_immutable_cache_header(stack):
    _, _, body = stack.nginx.request("/")
    css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', body)
    assert css, "the home page links no hashed stylesheet"
    status, headers, text = stack.nginx.request(css.group(1))
    assert status == 200
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["Content-Type"] == "text/css"
    assert text == (stack.dir / css.group(1).lstrip("/")).read_text()  # the bind-mounted file itself
    assert css.group(1) not in stack.logs(), "the stylesheet request reached gunicorn"


def test_healthz_answers_through_nginx(stack):
    status, headers, body = stack.nginx.request("/healthz")
    assert status == 200
    assert '"ok"' in body


def test_docker_reports_the_container_healthy(stack):
    assert stack.state()["Health"]["Status"] == "healthy"


def test_server_process_runs_as_uid_33(stack):
    pid = stack.server_pid()
    with open(f"/proc/{pid}/status") as status:
        uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
    assert uids == ["33", "33", "33", "33"]
    assert Path(f"/proc/{pid}/cmdline").read_text().split("\0")[1].endswith("gunicorn")


def test_the_entrypoint_passes_other_commands_through(stack, host_db):
    stack.compose(
        "run", "--rm", "-e", "DJANGO_SUPERUSER_PASSWORD=a-long-test-password",
        "app", "python", "manage.py", "createsuperuser", "--noinput", "--username", "moderator",
        "--email", "moderator@example.com",
    )  # fmt: skip
    assert host_db.psql("SELECT is_superuser FROM auth_user WHERE username = 'moderator'") == "t"
