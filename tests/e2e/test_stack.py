"""The shipped stack serves the site: compose + the host nginx + host PostgreSQL, as on a VPS."""


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


def test_healthz_answers_through_nginx(stack):
    status, headers, body = stack.nginx.request("/healthz")
    assert status == 200
    assert '"ok"' in body
