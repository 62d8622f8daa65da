"""The deployment files and code stay clean under their linters (installed from requirements-dev)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHELL_SCRIPTS = [
    *sorted(REPO.glob("docker/*.sh")),  # what enters the image
    *sorted(REPO.glob("scripts/*.sh")),  # tooling: deploy, lock, the offline base image
    REPO / ".ci/run",
    REPO / ".ci/provision",
]


def tool(name):
    """A linter from the test environment's venv (requirements-dev.txt)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed: make test installs requirements-dev.txt")
    return str(path)


def assert_clean(argv):
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(argv)} reported:\n{result.stdout}{result.stderr}"


def test_hadolint_finds_nothing_in_the_dockerfile():
    assert_clean([tool("hadolint"), "Dockerfile"])


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck_finds_nothing(script):
    assert_clean([tool("shellcheck"), str(script)])


def test_actionlint_finds_nothing_in_the_workflows():
    # With the venv first on PATH, actionlint also runs shellcheck on every `run:` script.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    argv = [tool("actionlint"), "-no-color", "-oneline"]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"actionlint reported:\n{result.stdout}{result.stderr}"
    assert (REPO / ".github/workflows/ci.yml").exists()


def test_ruff_finds_nothing():
    assert_clean([tool("ruff"), "check", "."])


@pytest.mark.slow  # needs Docker Compose
def test_docker_compose_accepts_the_compose_file(tmp_path):
    if (
        not shutil.which("docker")
        or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode
    ):
        pytest.skip("Docker Compose v2 is not installed: run .ci/provision")
    shutil.copy(REPO / "docker-compose.yml", tmp_path)
    shutil.copy(REPO / ".env.example", tmp_path / ".env")  # env_file must exist, as after `make up`
    result = subprocess.run(
        ["docker", "compose", "config", "--quiet"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"compose warned: {result.stderr}"
