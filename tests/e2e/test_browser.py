"""A real browser through nginx over HTTPS: Debian's chromium driven by its chromium-driver (both
installed by .ci/provision; on GitHub's runners, the preinstalled Chrome and its driver, named by
CHROME_BIN and CHROMEDRIVER). Nothing is downloaded: the driver's path is given, so Selenium
Manager never runs, and SE_MANAGER_PATH points nowhere in case it tried.

A visitor submits a site, an administrator (created the unattended way, DJANGO_SUPERUSER_*)
approves it in the admin, and the home page lists it. Every page loads with no console error and
no blocked resource, which is what the Content-Security-Policy nginx sends must allow.
Screenshots go to SCREENSHOTS_DIR (`make screenshots`: docs/screenshots/) or the test's tmp_path."""

import os
import re
import secrets
import shutil
from pathlib import Path

import pytest

from tests.harness import run

CHROME = os.environ.get("CHROME_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# For `make screenshots`: a few approved and pending sites, so the pictures look like a directory.
SAMPLES = [
    ("The Django Project", "https://www.djangoproject.com/", "Django's own site, built with Django.", True),
    ("Read the Docs", "https://readthedocs.org/", "Documentation hosting for open source.", True),
    ("Mozilla Add-ons", "https://addons.mozilla.org/", "Extensions and themes for Firefox.", True),
    ("A pending example", "https://pending.example.org/", "Waits for a moderator.", False),
]


@pytest.fixture
def browser(monkeypatch):
    for path in (CHROME, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.skip(f"{path} is missing: .ci/provision installs chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_MANAGER_PATH", "/nonexistent/selenium-manager")  # a download would fail loudly
    options = webdriver.ChromeOptions()
    options.binary_location = CHROME
    # Headless, and no connections of Chromium's own (updates, sync, QUIC probes): on a closed
    # network they fail, many at a time, beside the test's; only the site's requests go out.
    for argument in (
        "--headless=new", "--no-sandbox", "--window-size=1440,900", "--disable-dev-shm-usage",
        "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--no-first-run",
    ):  # fmt: skip
        options.add_argument(argument)
    options.add_argument("--ignore-certificate-errors")  # the test's own self-signed certificate
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shots_dir(tmp_path):
    where = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def loaded_cleanly(driver):
    """The page's console errors and the resources it could not load (stylesheets, images, scripts
    refused by the CSP or missing); both empty on a healthy page."""
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    broken = driver.execute_script(
        """
        const bad = [];
        for (const link of document.querySelectorAll('link[rel=stylesheet]'))
          if (!link.sheet) bad.push(link.href);
        for (const img of document.images)
          if (!img.complete || img.naturalWidth === 0) bad.push(img.src);
        const loaded = new Set(performance.getEntriesByType('resource').map(e => e.name));
        for (const script of document.querySelectorAll('script[src]'))
          if (!loaded.has(script.src)) bad.push(script.src);
        return bad;
        """
    )
    return errors, broken


def net_error(driver):
    """Chromium's own error page (the request failed below HTTP): its error code, else None."""
    found = re.search(r'"errorCode":"([A-Z_0-9]+)"', driver.page_source)
    return found and found.group(1)


def visit(driver, url):
    # Chromium fails what is in flight when the host's interfaces change (ERR_NETWORK_CHANGED):
    # Docker adding or removing another project's network does that. A GET may simply be loaded again.
    for _ in range(3):
        driver.get(url)
        errors, broken = loaded_cleanly(driver)
        if not any("ERR_NETWORK_CHANGED" in text for text in [net_error(driver) or "", *errors]):
            break
    assert not net_error(driver), f"{url}: {net_error(driver)}"
    assert not errors, f"console errors on {url}: {errors}"
    assert not broken, f"resources not loaded on {url}: {broken}"


def submit(driver, button):
    """Click a form's button and wait for the answer to load: a click returns as soon as the
    browser has it, and reading the page before the next one replaced it would read the old one."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element("tag name", "html")
    button.click()
    wait = WebDriverWait(driver, 30)
    wait.until(expected_conditions.staleness_of(page))
    assert not net_error(driver), f"after a form post: {net_error(driver)}"
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def seed_samples(stack):
    code = "from app.models import Site\n"
    for name, url, description, approved in SAMPLES:
        code += f"s, _ = Site.objects.get_or_create(url={url!r}, defaults=dict(name={name!r}, "
        code += f"description={description!r}, contact_email='owner@example.org'))\n"
        code += "s.approve()\n" if approved else ""
    stack.manage("shell", "-c", code)


def test_submit_approve_and_see_it_listed_in_a_real_browser(stack, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base = f"https://localhost:{stack.nginx.https_port}"
    name, url = f"Browser test {secrets.token_hex(3)}", f"https://{secrets.token_hex(4)}.example.com/"
    if os.environ.get("SCREENSHOTS_DIR"):
        seed_samples(stack)
        name, url = "Wagtail", "https://wagtail.org/"  # (a fresh stack: make screenshots runs this alone)

    # A visitor submits a site through the form.
    visit(browser, f"{base}/submit/")
    assert "id_name" in browser.page_source, browser.page_source[:1500]
    browser.find_element(By.ID, "id_name").send_keys(name)
    browser.find_element(By.ID, "id_url").send_keys(url)
    browser.find_element(By.ID, "id_description").send_keys("A CMS built on Django, sent by a real browser.")
    browser.find_element(By.ID, "id_contact_email").send_keys("owner@example.com")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.site-form button[type=submit]"))
    assert browser.current_url == f"{base}/submit/thanks/"
    visit(browser, f"{base}/")
    assert name not in browser.page_source  # not listed until a person approves it

    # An administrator, created unattended (no terminal: DJANGO_SUPERUSER_* and createsuperuser).
    username, password = f"admin-{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    admin = {"USERNAME": username, "EMAIL": "admin@example.com", "PASSWORD": password}
    env = [arg for key, value in admin.items() for arg in ("-e", f"DJANGO_SUPERUSER_{key}={value}")]
    run(["docker", "exec", *env, stack.container(), "python", "manage.py", "createsuperuser"])
    try:
        visit(browser, f"{base}/admin/login/?next=/admin/app/site/")
        browser.find_element(By.ID, "id_username").send_keys(username)
        browser.find_element(By.ID, "id_password").send_keys(password)
        submit(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]"))
        assert browser.current_url == f"{base}/admin/app/site/", browser.page_source[:500]
        errors, broken = loaded_cleanly(browser)
        assert not errors and not broken, (errors, broken)

        # Approve it with the admin's bulk action, from the moderation list.
        row = browser.find_element(By.XPATH, f"//tr[.//a[text()={name!r}]]")
        row.find_element(By.CSS_SELECTOR, "input.action-select").click()
        Select(browser.find_element(By.NAME, "action")).select_by_visible_text("Approve selected sites")
        submit(browser, browser.find_element(By.NAME, "index"))
        assert "Approved 1 site." in browser.page_source
        visit(browser, f"{base}/admin/app/site/")
        browser.save_screenshot(str(shots_dir(tmp_path) / "admin-moderation.png"))
    finally:
        model = "from django.contrib.auth.models import User; User.objects"
        stack.manage("shell", "-c", f"{model}.filter(username={username!r}).delete()")

    # The home page lists it now.
    visit(browser, f"{base}/")
    assert name in browser.page_source
    browser.save_screenshot(str(shots_dir(tmp_path) / "home.png"))
