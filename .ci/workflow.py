#!/usr/bin/python3
"""Runs the fork's workflow (.github/workflows/ci.yml) on this machine: each job's own `run:` steps in
order, jobs in `needs:` order, with the workflow's, job's and step's env and the matrix values. What
needs GitHub or a registry (`uses:` actions, services, the runner image's paths) is swapped for a
local stand-in declared in .ci/actions.py and .ci/swaps.py; every swap, and all that cannot run
here, is named in the output. Exits non-zero if any step fails, or if the workflow uses something
without a declared swap.

  .ci/workflow.py [--job NAME]... [--event push] [--ref refs/heads/main] [--pytest-args ARGS]
  .ci/workflow.py --plan        each step and its swap as JSON, nothing run (tests/test_workflow.py)

Debian's python3 and python3-yaml run it (.ci/provision); docs/ci.md says what each swap is.
"""

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit("workflow: PyYAML is missing: apt-get install python3-yaml (bash .ci/provision does)")

import swaps

REPO = Path(__file__).resolve().parent.parent
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(expr, ctx):
    """The expressions this workflow uses: context paths, 'literals', == and !=."""
    if m := re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", expr):
        return (evaluate(m[1], ctx) == evaluate(m[3], ctx)) == (m[2] == "==")
    if m := re.fullmatch(r"'([^']*)'", expr):
        return m[1]
    value = ctx
    for part in expr.split("."):
        if not isinstance(value, dict) or part not in value:
            raise swaps.Refused(f"cannot evaluate ${{{{ {expr} }}}} here")
        value = value[part]
    return value


def substitute(value, ctx):
    if isinstance(value, dict):
        return {key: substitute(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, ctx) for item in value]
    if isinstance(value, str):
        return EXPR.sub(lambda m: str(evaluate(m[1], ctx)), value)
    return str(value).lower() if isinstance(value, bool) else value  # as GitHub passes inputs: "true"


def instances(job):
    """The job's matrix as a list of value dicts (one empty dict without a matrix)."""
    matrix = (job.get("strategy") or {}).get("matrix")
    if not matrix:
        return [{}]
    axes = {key: value for key, value in matrix.items() if key not in ("include", "exclude")}
    if axes and matrix.get("include"):
        raise swaps.Refused("a matrix with both axes and include: not supported by this runner")
    combos = (
        [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())] if axes else []
    )
    combos += list(matrix.get("include") or [])
    return [c for c in combos if c not in (matrix.get("exclude") or [])]


def ordered(jobs):
    """Job ids, each after those it needs; otherwise in file order."""
    done, order = set(), []
    while len(order) < len(jobs):
        ready = [j for j in jobs if j not in done and set(needs(jobs[j])) <= done]
        if not ready:
            raise swaps.Refused(f"needs: form a cycle among {sorted(set(jobs) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return order


def needs(job):
    value = job.get("needs") or []
    return [value] if isinstance(value, str) else value


def plan(workflow):
    """Every step of every job with the swap that stands in for it; refuses an undeclared one."""
    steps = []
    for job_id in ordered(workflow["jobs"]):
        job = workflow["jobs"][job_id]
        for name, service in (job.get("services") or {}).items():
            steps.append({"job": job_id, "service": name, "swap": swaps.service_swap(service).__doc__})
        for step in job.get("steps", []):
            if "uses" in step:
                action = step["uses"].split("@")[0]
                steps.append({"job": job_id, "uses": action, "swap": swaps.action_swap(action).__doc__})
                unknown = sorted(set(step.get("with") or {}) - swaps.actions.INPUTS.get(action, set()))
                if unknown:
                    raise swaps.Refused(f"{action}: no local equivalent for its input {', '.join(unknown)}")
            else:
                steps.append({"job": job_id, "run": str(step["run"]), "name": step.get("name", "")})
    return steps


def run_job(local, job_id, job, matrix, workflow):
    ctx = {**local.context(), "matrix": matrix, "steps": {}}
    env = {**(workflow.get("env") or {}), **(job.get("env") or {})}
    ctx["env"] = env = {key: local.swap_value(str(substitute(v, ctx))) for key, v in env.items()}
    with local.services(substitute(job.get("services") or {}, ctx)):
        for number, step in enumerate(job["steps"], 1):
            step_env = {
                k: local.swap_value(str(v)) for k, v in substitute(step.get("env") or {}, ctx).items()
            }
            ctx["env"] = step_env = {**env, **step_env}
            if "if" in step and not evaluate(EXPR.sub(r"\1", str(step["if"])), ctx):
                local.say(f"  step {number} skipped (if: {step['if']})")
                continue
            label = step.get("name") or step.get("uses") or str(step["run"]).splitlines()[0]
            local.say(f"  step {number}: {label}")
            started = time.monotonic()
            if "uses" in step:
                inputs = {
                    k: local.swap_value(str(v)) for k, v in substitute(step.get("with") or {}, ctx).items()
                }
                outputs = swaps.action_swap(step["uses"].split("@")[0])(local, inputs)
            else:
                outputs = run_script(local, substitute(str(step["run"]), ctx), step_env)
            local.say(f"  step {number} passed in {time.monotonic() - started:.0f} s")
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": outputs or {}}


def run_script(local, script, env):
    """A `run:` step as GitHub runs it: bash -eo pipefail, with GITHUB_ENV/OUTPUT/PATH files read back."""
    with tempfile.TemporaryDirectory(prefix="workflow-step-") as tmp:
        files = {name: Path(tmp, name) for name in ("env", "output", "path")}
        for path in files.values():
            path.touch()
        (Path(tmp) / "step.sh").write_text(local.override(script))
        full = {**os.environ, **local.extra_env, **env}
        full.update(
            GITHUB_ENV=str(files["env"]), GITHUB_OUTPUT=str(files["output"]), GITHUB_PATH=str(files["path"])
        )
        full["PATH"] = os.pathsep.join([*local.path_first, full["PATH"]])
        argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(Path(tmp) / "step.sh")]
        code = subprocess.run(argv, cwd=REPO, env=full).returncode
        if code:
            raise swaps.StepFailed(f"exited {code}")
        local.extra_env.update(
            line.split("=", 1) for line in files["env"].read_text().splitlines() if "=" in line
        )
        local.path_first[:0] = files["path"].read_text().split()
        return dict(line.split("=", 1) for line in files["output"].read_text().splitlines() if "=" in line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, default=REPO / ".github/workflows/ci.yml")
    parser.add_argument("--job", action="append", help="run only this job (repeatable); default: all")
    parser.add_argument("--event", default="push", help="github.event_name (default: push)")
    parser.add_argument("--ref", help="github.ref (default: refs/heads/<this branch>)")
    parser.add_argument("--pytest-args", help="development only: replaces PYTEST_ARGS=... in run steps")
    parser.add_argument(
        "--plan", action="store_true", help="print each step and its swap as JSON; run nothing"
    )
    args = parser.parse_args()
    try:
        workflow = yaml.safe_load(args.workflow.read_text())
        steps = plan(workflow)
        unknown = set(args.job or []) - set(workflow["jobs"])
        if unknown:
            raise swaps.Refused(f"no job named {', '.join(sorted(unknown))} in {args.workflow.name}")
    except (OSError, yaml.YAMLError, KeyError, swaps.Refused) as error:
        sys.exit(f"workflow: {error}")
    if args.plan:
        print(json.dumps(steps, indent=1))
        return 0
    local = swaps.Local(REPO, args.event, args.ref, args.pytest_args)
    results = {}
    try:
        for job_id in ordered(workflow["jobs"]):
            if args.job and job_id not in args.job:
                continue
            job = workflow["jobs"][job_id]
            for matrix in instances(job):
                values = ", ".join(str(value) for value in matrix.values() if value)
                title = f"{job_id} ({values})" if values else job_id
                results[title] = local.run(
                    title, lambda j=job_id, jb=job, m=matrix: outcome(local, j, jb, m, workflow, results)
                )
    finally:
        local.close()
    return local.summary(results)


def outcome(local, job_id, job, matrix, workflow, results):
    """Runs one job instance unless GitHub would not (if:, a failed need) or it cannot run here."""
    failed = [
        n
        for n in needs(job)
        if any(t.split(" (")[0] == n and r.startswith(("failed", "skipped")) for t, r in results.items())
    ]
    if failed:
        return f"skipped: needs {', '.join(failed)}, which did not pass"
    if "if" in job and not evaluate(EXPR.sub(r"\1", str(job["if"])), local.context()):
        return f"skipped: if: {job['if']} is false for event {local.event}"
    reason = local.cannot_run(matrix)
    if reason:
        return f"not here: {reason}"
    run_job(local, job_id, job, matrix, workflow)
    return "passed"


if __name__ == "__main__":
    sys.exit(main())
