"""`make help` is the map of the project's commands: every target a user runs is on it, explained."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_make_help_lists_every_target_with_its_description():
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    targets = re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), re.MULTILINE)
    result = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    listed = dict(re.findall(r"^  make (\S+) +(\S.*)$", result.stdout, re.MULTILINE))
    assert set(targets) <= set(listed), f"targets without a ## description: {set(targets) - set(listed)}"
    # `make` alone shows the same map, not a build.
    bare = subprocess.run(["make", "--no-print-directory"], cwd=REPO, capture_output=True, text=True)
    assert bare.stdout == result.stdout


def test_make_account_refuses_an_account_of_the_hosts_own(tmp_path):
    """SITE=www-data would make the site nginx's and PHP's user again: refused before any change."""
    if not shutil.which("make") or subprocess.run(["id", "-u", "www-data"], capture_output=True).returncode:
        pytest.skip("make or a www-data account is missing")
    shutil.copy(REPO / "Makefile", tmp_path)
    (tmp_path / ".env").write_text("SITE=www-data\n")
    result = subprocess.run(["make", "-s", "account"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert (
        "make account: www-data is uid 33, an account of the host's own: pick another SITE" in result.stderr
    )
    assert (tmp_path / ".env").read_text() == "SITE=www-data\n" and not (tmp_path / "static").exists()
