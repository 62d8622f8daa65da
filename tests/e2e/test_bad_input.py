"""Bad input, from the operator and from the Internet: the container refuses a broken configuration
with a line that says what is wrong, and nginx and Django turn hostile requests away cleanly."""

import math
import random
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Stack, site_env, wait_for
from tests.harness.http import Browser, fresh_client, request

# --- The container, started with a broken .env ------------------------------------------------


@pytest.fixture(scope="module")
def misconfigured(e2e_root, stack, host_db):
    """start(**changes): the session's image started through the project's compose file (`compose
    run`: no restart policy, so one start) with the site's .env changed (None removes a variable)
    and quick database retries; returns (exit status, everything the container printed)."""
    app = Stack(e2e_root, "sitekit-bad-env", image=stack.image)
    app.compose("create")  # the network, now: compose's own progress lines stay out of the output

    def start(**changes):
        app.write_env(site_env(host_db, 443, DB_WAIT_ATTEMPTS="2", DB_WAIT_SECONDS="1", **changes))
        result = app.compose("run", "--rm", "-T", "app", check=False, timeout=180)
        return result.returncode, (result.stdout + result.stderr).strip()

    yield start
    app.down()


def test_a_wrong_database_password_stops_the_container_at_once(misconfigured):
    status, output = misconfigured(DB_PASSWORD="not-the-password")
    assert status != 0
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output  # retrying cannot fix a password: no second attempt
    assert 'password authentication failed for user "sitekit"' in output


def test_an_unresolvable_database_host_is_named_and_given_up_on(misconfigured):
    status, output = misconfigured(DB_HOST="db.invalid")
    assert status != 0
    assert "Traceback" not in output
    assert 'could not translate host name "db.invalid"' in output
    assert output.splitlines()[-1].endswith(
        "database still unreachable after 2 attempts; giving up (the restart policy will try again)"
    )


def test_a_missing_secret_key_stops_the_container_with_one_line(misconfigured):
    status, output = misconfigured(SECRET_KEY=None)
    assert status != 0
    assert output == "configuration error: SECRET_KEY is required but not set"


def test_a_non_numeric_web_concurrency_stops_the_container_with_a_line_naming_it(misconfigured):
    status, output = misconfigured(WEB_CONCURRENCY="three")
    assert status != 0
    assert "Traceback" not in output
    assert "WEB_CONCURRENCY" in output.splitlines()[-1]


# --- Hostile requests through nginx -----------------------------------------------------------


def test_a_host_name_not_in_allowed_hosts_gets_400(stack):
    # nginx's catch-all server keeps such requests from Django (tests/e2e/test_edge.py); behind it,
    # Django refuses them too.
    for host in ("evil.example", "localhost.evil.example", "127.0.0.1"):
        status, _, _ = request(stack.port, "/", host=host, headers={"X-Forwarded-Proto": "https"})
        assert status == 400, host


def test_a_body_over_one_megabyte_is_refused_by_nginx_before_gunicorn(stack):
    big, small = f"big-{secrets.token_hex(4)}", f"small-{secrets.token_hex(4)}"
    status, headers, _ = stack.nginx.request(f"/submit/?probe={big}", method="POST", body=b"x" * (2**20 + 1))
    assert status == 413
    assert headers["Server"] == "nginx"
    # The contrast: a body just under the limit does reach gunicorn (and CSRF refuses it there).
    status, _, _ = stack.nginx.request(f"/submit/?probe={small}", method="POST", body=b"x" * (2**20 - 1024))
    assert status == 403
    wait_for(lambda: small in stack.logs(), what="the small body's line in gunicorn's access log")
    assert big not in stack.logs()


def test_path_traversal_out_of_static_serves_no_file(stack):
    secret_key = re.search(r"^SECRET_KEY=(.+)$", (stack.dir / ".env").read_text(), re.M).group(1)
    settings_source = 'env_bool("DEBUG"'
    # Both targets exist where an escape from nginx's `root` would land: the stack's copy of the repo.
    assert settings_source in (stack.dir / "app/settings.py").read_text()
    for path in (
        "/static/../app/settings.py",
        "/static/..%2fapp/settings.py",
        "/static/%2e%2e/app/settings.py",
        "/static/%2e%2e%2fapp%2fsettings.py",
        "/static/..%5capp%5csettings.py",
        "/static../app/settings.py",
        "/static//../app/settings.py",
        "/static/../.env",
        "/static/%2e%2e/%2eenv",
        "/static/../../../../etc/passwd",
    ):
        status, _, body = stack.nginx.request(path)
        assert status in (400, 403, 404), path
        assert settings_source not in body and secret_key not in body and "root:x:0:0" not in body, path


def test_dotfiles_are_never_served(stack):
    token = secrets.token_hex(8)
    hidden, visible = stack.static / ".hidden", stack.static / "visible.txt"
    # What the entrypoint's publish_static writes before renaming it into place: never served half-made.
    partial = stack.static / f".style.0123456789ab.css.{token[:12]}.tmp"
    try:
        for path in (hidden, visible, partial):
            path.write_text(token)
        # The contrast: the same content under an ordinary name is served.
        assert stack.nginx.request("/static/visible.txt")[::2] == (200, token)
        for path in [
            f"/static/{partial.name}",
            "/static/.hidden",
            "/static/%2ehidden",
            "/.env",
            "/.git/config",
        ]:
            status, _, body = stack.nginx.request(path)
            assert status in (403, 404), path
            assert token not in body, path
    finally:
        for path in (hidden, visible, partial):
            path.unlink(missing_ok=True)


def test_a_form_post_without_a_valid_csrf_token_gets_403(stack):
    browser = Browser(stack.nginx)
    fields = {"name": "No token", "url": f"https://csrf-{secrets.token_hex(4)}.example", "description": "x"}
    token = browser.csrf_token("/submit/")
    headers = browser.form_headers("/submit/")
    attempts = {
        "no token, no cookie": (fields, {"Origin": browser.origin, "Referer": browser.origin + "/submit/"}),
        "cookie but no token": (fields, headers),
        "token from another origin": (
            {"csrfmiddlewaretoken": token, **fields},
            {**headers, "Origin": "https://evil.example", "Referer": "https://evil.example/"},
        ),
    }
    for attempt, (data, request_headers) in attempts.items():
        status, _, _ = browser.request(
            "/submit/",
            method="POST",
            body=urlencode(data),
            headers={"Content-Type": "application/x-www-form-urlencoded", **request_headers},
        )
        assert status == 403, attempt


# --- Fuzzed submissions through nginx ---------------------------------------------------------

HYPOTHESIS_EXAMPLES, RANDOM_EXAMPLES = 300, 1000  # about a minute on two busy cores
NASTY = [
    "<script>alert(1)</script>",
    "\"'><img src=x onerror=alert(1)>",
    "' OR '1'='1' --",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "${jndi:ldap://x}",
    "../../etc/passwd",
    "\x00",
    "\x1b[2J",
    "\r\n\r\n",
    "\t",
    "\u202e",
    "\ufeff",
    "😀",
    "ℌ𝔢𝔩𝔩𝔬",
    "İß",
    "%",
    "%zz",
    "&",
    "=",
    "+",
    "javascript:alert(1)",
    "https://[",
    "user:pw@",
    "x" * 600,
]
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)  # anything UTF-8 can carry
hypothesis_form = st.fixed_dictionaries(
    {},
    optional={
        "name": text,
        "url": st.one_of(
            text,
            st.builds("https://{}.example/{}".format, st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True), text),
        ),
        "description": text,
        "contact_email": st.one_of(st.emails(), text),
        "homepage": text,
    },
)


def random_text(rng):
    """A few hostile pieces among random characters: ASCII with its control characters, and the
    rest of the Basic Multilingual Plane below the surrogates."""
    pieces = rng.choices(NASTY, k=rng.randint(0, 3))
    pieces += [
        chr(rng.choice([rng.randrange(0x80), rng.randrange(0xD800)])) for _ in range(rng.randint(0, 30))
    ]
    rng.shuffle(pieces)
    return "".join(pieces)


def random_submission(seed):
    """Mostly acceptable submissions full of hostile text, some malformed; a few share a URL, so
    concurrent posts race to insert it."""
    rng = random.Random(seed)
    host = rng.choice(["dup-a", "dup-b"]) if rng.random() < 0.1 else f"fuzz-{rng.getrandbits(48):x}"
    fields = {
        "name": random_text(rng)[:100] or "x",
        "url": f"https://{host}.example/{quote(random_text(rng))}"[:200],
        "description": random_text(rng)[:500] or "x",
        "contact_email": rng.choice(["", "", "someone@example.org", random_text(rng)]),
    }
    fields = {key: value for key, value in fields.items() if rng.random() > 0.05}
    if rng.random() < 0.1:
        return urlencode(fields).encode() + b"&" + rng.randbytes(rng.randint(1, 200))
    return urlencode(fields).encode()


def test_fuzzed_submissions_never_fail_and_render_afterwards(stack):
    """Hundreds of hostile submissions, straight to the container's port with the headers nginx
    adds (through nginx they would meet its per-client limit on POSTs after a dozen); then a burst
    of them through nginx, which answers past the limit with 429, never a 5xx."""
    browser = Browser(stack.nginx)
    token = browser.csrf_token("/submit/")
    headers = browser.form_headers("/submit/")
    as_from_nginx = {**headers, "X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1"}
    shell = "from app.models import Site; from django.utils import timezone; "
    last_id = "print(max(Site.objects.values_list('id', flat=True), default=0))"
    first_id = int(stack.manage("shell", "-v", "0", "-c", shell + last_id).stdout)

    def post(body, port=stack.port, **options):
        body = f"csrfmiddlewaretoken={token}&".encode() + body
        status, _, _ = request(port, "/submit/", method="POST", body=body, headers=as_from_nginx, **options)
        assert status < 500, body
        return status

    # No deadline, and no complaint about slow generation: the machine is busy serving the requests.
    @settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(hypothesis_form.map(lambda form: urlencode(form).encode()), st.binary(max_size=500)))
    def post_generated(body):
        post(body)

    try:
        post_generated()
        seed = random.randrange(2**32)
        with ThreadPoolExecutor(4) as pool:
            statuses = list(
                pool.map(lambda i: post(random_submission(f"{seed}-{i}")), range(RANDOM_EXAMPLES))
            )
        assert statuses.count(302) > RANDOM_EXAMPLES // 2, f"seed {seed}: too few submissions accepted"
        client = fresh_client()
        burst = [
            post(random_submission(f"{seed}-nginx-{i}"), stack.nginx.https_port, https=True, source=client)
            for i in range(20)
        ]
        assert 429 in burst, f"seed {seed}: 20 posts through nginx, none limited: {burst}"

        # Publish every fuzzed row: each page that shows them, on the site and in the admin, still renders.
        approve = f"Site.objects.filter(id__gt={first_id}).update(approved=True, approved_at=timezone.now())"
        counts = "print(Site.objects.filter(approved=True).count(), Site.objects.count())"
        published = stack.manage("shell", "-v", "0", "-c", f"{shell}{approve}; {counts}")
        approved, total = map(int, published.stdout.split())
        for page in range(1, math.ceil(approved / 12) + 1):  # SITES_PER_PAGE
            assert stack.nginx.request(f"/?page={page}")[0] == 200, page
        with stack.superuser() as (username, password):
            browser.log_in(username, password)
            for page in range(1, math.ceil(total / 100) + 1):  # the admin's list_per_page
                assert browser.request(f"/admin/app/site/?p={page}")[0] == 200, page
    finally:
        stack.manage("shell", "-c", shell + f"Site.objects.filter(id__gt={first_id}).delete()")
