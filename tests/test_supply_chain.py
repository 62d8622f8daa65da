"""What CI must refuse before anything ships: pins that no longer follow their .in files, a model
change without its migration, and a pin with a known vulnerability."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import BASE_IMAGE

REPO = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
LOCKFILES = ("requirements.txt", "requirements-test.txt", "requirements-dev.txt")  # each layer on the last


@pytest.mark.slow  # a pip-compile in the base image: about 30 s
def test_lockfiles_are_what_make_lock_compiles_from_the_in_files(tmp_path):
    """Recompile a copy with `make lock`'s script in the base image; pip-compile keeps every pin
    that still satisfies the .in files, so any difference means a .txt is out of date."""
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no Docker engine to run the base image in: run .ci/provision")
    image = BASE_IMAGE  # the base the container builds on, as `make lock` uses it
    script = "scripts/pip-compile.sh"  # what `make lock` runs
    for name in (
        *(Path(lock).with_suffix(".in").name for lock in LOCKFILES),
        *LOCKFILES,
        "docker/os-packages.sh",
        script,
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    result = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{tmp_path}:/src", "-w", "/src", image, "sh", script],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"pip-compile in {image} failed:\n{result.stderr[-3000:]}"
    for name in LOCKFILES:
        fresh, committed = (tmp_path / name).read_text(), (REPO / name).read_text()
        assert fresh == committed, f"{name} is out of date with its .in file: run `make lock` and commit it"


def test_every_model_change_has_its_migration():
    # The test process's environment: the real PostgreSQL the suite runs on (tests/plugin.py).
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"a model changed without a migration (makemigrations):\n{result.stdout}"


def audit(lockfile):
    """pip-audit's JSON report of a lockfile's pins, from PyPI's vulnerability data; None if no
    report came back (no network at all)."""
    result = subprocess.run(
        [Path(sys.executable).parent / "pip-audit", "--require-hashes", "--disable-pip"]
        + ["--progress-spinner", "off", "--format", "json", "-r", lockfile],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        return json.loads(result.stdout), result.stderr
    except json.JSONDecodeError:
        return None, result.stderr


@pytest.mark.slow  # PyPI's vulnerability data, over the network
@pytest.mark.parametrize("lockfile", LOCKFILES)
def test_no_pin_has_a_known_vulnerability(lockfile):
    if not (Path(sys.executable).parent / "pip-audit").exists():
        pytest.skip("pip-audit is not installed: make test installs requirements-dev.txt")
    report, stderr = audit(lockfile)
    unaudited = (
        [
            f"{dep['name']} {dep.get('version', '')}".strip()
            for dep in report["dependencies"]
            if dep.get("skip_reason")
        ]
        if report
        else ["all pins (" + (stderr.strip().splitlines() or ["no output"])[-1] + ")"]
    )
    if unaudited:
        # pip-audit itself reports success here ("No known vulnerabilities found"): say it loudly.
        why = (
            f"VULNERABILITY DATA UNREACHABLE: {len(unaudited)} pins of {lockfile} were NOT audited "
            f"({', '.join(unaudited[:4])}{', ...' if len(unaudited) > 4 else ''})"
        )
        print(why, file=sys.stderr)
        if os.environ.get("VULNERABILITY_DATA") == "unreachable":
            # Declared by a CI whose machine cannot reach the data (.ci/run here): recorded, not passed.
            pytest.xfail(why)
        # Under CI=true this skip fails the run: GitHub's runners reach PyPI, so there this is an
        # outage, and a supply-chain gate that passes while blind would prove nothing. Re-run later.
        pytest.skip(why)
    found = [
        f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {', '.join(vuln['fix_versions']) or '-'})"
        for dep in report["dependencies"]
        for vuln in dep.get("vulns", [])
    ]
    assert not found, f"known vulnerabilities in {lockfile} (update the pin: make lock):\n" + "\n".join(found)
