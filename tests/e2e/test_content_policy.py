"""Content-Security-Policy and Permissions-Policy (sent by nginx, `always`) on every page and
static file, and the pages themselves, the admin's included, free of anything the policy blocks.
A real browser loading the pages under it: test_browser.py."""

import base64
import hashlib
import re

from tests.harness.http import Browser, fresh_client, policy

PERMISSIONS = "camera=()"  # one of the features the Permissions-Policy turns off


def same_site(url):
    return url.startswith("/") and not url.startswith("//")


def inline_code(html):
    """What a Content-Security-Policy without 'unsafe-inline' would block in a page: inline
    scripts (JSON data blocks are not run), <style> blocks, style and on* attributes, javascript:
    URLs; and scripts or stylesheets from anywhere but the site itself."""
    found = []
    for attributes in re.findall(r"<script\b([^>]*)>", html):
        src = re.search(r'\bsrc="([^"]*)"', attributes)
        if src and not same_site(src.group(1)):
            found.append(f"script from {src.group(1)}")
        elif not src and 'type="application/json"' not in attributes:
            found.append("inline <script>")
    found += ["<style> block"] * len(re.findall(r"<style\b", html))
    found += re.findall(r"<[^>]*\s(style|on[a-z]+)\s*=", html)
    found += re.findall(r'(?:href|src|action)="\s*javascript:', html, re.I)
    found += [
        f"stylesheet {href}"
        for href in re.findall(r'<link[^>]*href="([^"]*\.css)"', html)
        if not same_site(href)
    ]
    return found


def test_pages_and_static_files_carry_a_content_security_policy_and_the_admin_works_under_it(stack):
    browser = Browser(stack.nginx, source=fresh_client())
    _, _, home = browser.request("/")
    css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', home).group(1)
    for path, expected in [("/", 200), ("/submit/", 200), ("/admin/login/", 200), ("/no-such-page/", 404)]:
        status, headers, text = browser.request(path)
        assert status == expected, path
        page = policy(headers)
        # Scripts and styles from the site itself only, no plugins, no framing, forms post home.
        assert page["default-src"] == ["'self'"] and "script-src" not in page, page
        assert (page["object-src"], page["frame-ancestors"], page["form-action"]) == (
            ["'none'"],
            ["'none'"],
            ["'self'"],
        )
        assert PERMISSIONS in headers["Permissions-Policy"], path
        assert inline_code(text) == [], path
    # The one inline style, the error pages' (they may load no file when things fail), by its hash.
    error_page = (stack.dir / "templates/error_page.html").read_text()
    style = re.search(r"<style>(.*?)</style>", error_page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert page["style-src"] == ["'self'", f"'sha256-{digest}'"], "error_page.html's <style> changed"
    for path, expected in [(css, 200), ("/static/site/favicon.svg", 200), ("/static/missing.css", 404)]:
        status, headers, _ = browser.request(path)
        assert status == expected, path
        assert "sandbox" in policy(headers) and PERMISSIONS in headers["Permissions-Policy"], path
    # The admin under this policy: the pages a moderator uses need nothing it blocks.
    with stack.superuser() as (username, password):
        browser.log_in(username, password)
        _, _, users = browser.request("/admin/auth/user/")
        user_page = re.search(r'href="(/admin/auth/user/\d+/change/)"', users).group(1)
        for path in [
            "/admin/",
            "/admin/app/site/",
            "/admin/app/site/add/",
            user_page,
            "/admin/password_change/",
        ]:
            status, _, text = browser.request(path)
            assert status == 200, path
            assert inline_code(text) == [], path
