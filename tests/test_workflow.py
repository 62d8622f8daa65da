"""The local runner of the fork's workflow (.ci/workflow.py) covers every step of it: each `uses:` has a
declared local swap, each `run:` step is run as written, in `needs:` order, and a failing step fails
the run. So the workflow cannot change without the runner (which CI runs) claiming it."""

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / ".ci/workflow.py"
WORKFLOW = REPO / ".github/workflows/ci.yml"


def runner(*args, cwd=REPO):
    """The runner under Debian's python3 with python3-yaml, as .ci/run calls it."""
    result = subprocess.run([str(RUNNER), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if "PyYAML is missing" in result.stderr:
        pytest.skip("python3-yaml is not installed: run .ci/provision")
    return result


def test_every_uses_has_a_declared_swap_and_every_run_step_is_run():
    text = WORKFLOW.read_text()
    # Read from the text, not through the runner's own parse: a step it skipped would show here.
    actions = re.findall(r"^\s*(?:- )?uses: ([\w./-]+)@", text, re.M)
    run_steps = re.findall(r"^\s*(?:- )?run: ", text, re.M)
    result = runner("--plan")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    planned = [step for step in plan if "uses" in step]
    assert [step["uses"] for step in planned] == actions
    assert all(step["swap"] for step in planned), "an action without a declared swap"
    assert len([step for step in plan if "run" in step]) == len(run_steps)
    assert [step["service"] for step in plan if "service" in step] == re.findall(
        r"^    services:\n      (\w+):", text, re.M
    )


def test_an_action_or_an_input_without_a_local_equivalent_stops_the_runner_before_anything_runs(tmp_path):
    drifted = tmp_path / "ci.yml"
    drifted.write_text(
        WORKFLOW.read_text().replace(
            "      - name: Test tools",
            "      - uses: example/deploy-somewhere@v1\n      - name: Test tools",
            1,
        )
    )
    result = runner("--workflow", str(drifted))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "workflow: no local swap declared for example/deploy-somewhere (.ci/actions.py): "
        "this runner cannot stand in for it"
    ]
    assert "job checks" not in result.stdout

    drifted.write_text(
        WORKFLOW.read_text().replace(
            "          load: true\n", "          load: true\n          no-cache: true\n"
        )
    )
    result = runner("--workflow", str(drifted))
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        == "workflow: docker/build-push-action: no local equivalent for its input no-cache"
    )


def test_jobs_run_in_needs_order_with_their_matrix_and_env_and_a_failed_step_fails_the_run(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "ci.yml").write_text(
        f"""
env: {{GREETING: hello}}
jobs:
  second:
    needs: first
    strategy: {{matrix: {{include: [{{word: one}}, {{word: two}}]}}}}
    steps:
      - run: echo "$GREETING ${{{{ matrix.word }}}} ${{{{ github.event_name }}}}" >> {out}
  first:
    steps:
      - run: echo first >> {out}
      - run: exit 3
      - run: echo never >> {out}
  third:
    needs: [first]
    steps:
      - run: echo third >> {out}
"""
    )
    result = runner("--workflow", str(tmp_path / "ci.yml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert out.read_text() == "first\n"  # the failing step stopped its job; those that need it skipped
    assert "second (one)" in result.stdout and "skipped: needs first" in result.stdout
    assert "jobs: 0 passed, 1 failed, 3 skipped or not here" in result.stdout

    (tmp_path / "ci.yml").write_text((tmp_path / "ci.yml").read_text().replace("exit 3", "exit 0"))
    out.unlink()
    result = runner("--workflow", str(tmp_path / "ci.yml"), "--job", "first", "--job", "second")
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == "first\nnever\nhello one push\nhello two push\n"


def test_a_variant_whose_base_cannot_be_pulled_here_is_named_and_does_not_hold_back_what_needs_it(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "ci.yml").write_text(
        f"""
jobs:
  image:
    strategy: {{matrix: {{include: [{{base: python:3.14-alpine}}]}}}}
    steps:
      - run: exit 1
  publish:
    needs: image
    steps:
      - run: echo published >> {out}
"""
    )
    result = runner("--workflow", str(tmp_path / "ci.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "job image (python:3.14-alpine): not here: python:3.14-alpine cannot be pulled" in result.stdout
    assert out.read_text() == "published\n"
