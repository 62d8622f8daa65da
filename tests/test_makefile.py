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
