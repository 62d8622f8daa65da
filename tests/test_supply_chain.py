"""What CI must refuse before anything ships: pins that no longer follow their .in files, a model
change without its migration, and a pin with a known vulnerability."""

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import BASE_IMAGE

REPO = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
LOCKFILES = ("requirements.txt", "requirements-test.txt", "requirements-dev.txt")  # each layer on the last


LOCK_INPUTS = (  # what `make lock` reads and writes
    *(Path(lock).with_suffix(".in").name for lock in LOCKFILES),
    *LOCKFILES,
    "docker/os-packages.sh",
    "scripts/pip-compile.sh",  # what `make lock` runs
)


def lock_copy(directory):
    """A copy of the lock's inputs and lockfiles in `directory`, to recompile (or spoil) there."""
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no Docker engine to run the base image in: run .ci/provision")
    for name in LOCK_INPUTS:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, directory / name)
    return directory


def freshness_problems(directory, image=BASE_IMAGE):
    """The freshness check on a lock copy: recompile it with `make lock`'s script in the base image.
    pip-compile keeps every pin that still satisfies the .in files, so a lockfile it rewrites is out
    of date, and one it cannot compile no longer resolves. One message per problem; none if fresh."""
    committed = {name: (directory / name).read_text() for name in LOCKFILES}
    result = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{directory}:/src", "-w", "/src", image, "sh", LOCK_INPUTS[-1]],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        return [
            f"the lock no longer resolves, or PyPI is out of reach (pip-compile in {image} failed):\n"
            + result.stderr[-3000:]
        ]
    problems = []
    for name in LOCKFILES:
        fresh = (directory / name).read_text()
        if fresh != committed[name]:
            diff = difflib.unified_diff(
                committed[name].splitlines(), fresh.splitlines(), name, "make lock", n=0
            )
            problems.append(
                f"{name} is out of date with its .in file: run `make lock` and commit it\n"
                + "\n".join(list(diff)[:30])
            )
    return problems


@pytest.mark.slow  # a pip-compile in the base image: about 45 s
def test_lockfiles_are_what_make_lock_compiles_from_the_in_files(tmp_path):
    problems = freshness_problems(lock_copy(tmp_path))
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_the_freshness_check_refuses_an_in_file_changed_without_make_lock(tmp_path):
    lock = lock_copy(tmp_path)
    with (lock / "requirements.in").open("a") as requirements:
        requirements.write("six\n")  # a new dependency, its lockfiles not recompiled
    problems = freshness_problems(lock)
    assert problems and problems[0].startswith("requirements.txt is out of date"), problems
    assert "+six==" in problems[0], problems[0]  # the message shows what the lock lacks


@pytest.mark.slow
def test_the_freshness_check_refuses_a_locked_pin_that_no_longer_resolves(tmp_path):
    lock = lock_copy(tmp_path)
    pins = (lock / "requirements.txt").read_text()
    pin = re.search(r"^django==\S+", pins, re.M).group()
    (lock / "requirements.txt").write_text(pins.replace(pin, "django==5.2.999"))  # no such release
    problems = freshness_problems(lock)
    assert problems and problems[0].startswith("requirements.txt is out of date"), problems
    assert "-django==5.2.999" in problems[0], problems[0]  # pip-compile replaced the pin: the diff says so


@pytest.mark.slow
def test_the_freshness_check_refuses_an_in_file_that_no_longer_resolves(tmp_path):
    lock = lock_copy(tmp_path)
    with (lock / "requirements.in").open("a") as requirements:
        requirements.write("django==5.2.999\n")  # no such release: pip-compile cannot resolve
    problems = freshness_problems(lock)
    assert len(problems) == 1 and problems[0].startswith("the lock no longer resolves"), problems
    assert "django" in problems[0], problems[0]  # pip's own words name the requirement


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
