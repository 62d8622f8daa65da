"""The image: build time cold against a rebuild after a code-only change (in pairs, round by
round: each rebuild follows its own cold build), and the final size against a single-stage build of
the same app (the shipped Dockerfile with its stages merged; sizes do not vary, so once)."""

import time
from dataclasses import dataclass

from tests.bench.load import ROUNDS
from tests.bench.setups import IMAGE, docker_build
from tests.harness import run, tag

SINGLE_STAGE = tag("sitekit-bench-single-stage")


@dataclass
class Image:
    cold_s: list  # one per round
    rebuild_s: list  # each after the same round's cold build
    final_mb: float
    single_stage_mb: float


def timed(action):
    started = time.monotonic()
    action()
    return time.monotonic() - started


def size_mb(image):
    return int(run(["docker", "image", "inspect", "-f", "{{.Size}}", image]).stdout) / 1e6


def single_stage(dockerfile):
    """The runtime stage's instructions run on top of the build stage instead of a fresh base, so the
    compiler, headers and pip's leftovers stay; its COPY --from=build lines have nothing to do.
    Later stages (FROM runtime ...) are kept as they are."""
    build, fresh_base, runtime = dockerfile.partition("\nFROM ${PYTHON_IMAGE} AS runtime\n")
    assert fresh_base, "the Dockerfile has no `FROM ${PYTHON_IMAGE} AS runtime` stage: update images.py"
    kept = [line for line in runtime.splitlines() if not line.startswith("COPY --from=build")]
    return build + "\nFROM build AS runtime\n" + "\n".join(kept) + "\n"


def measure(stack):
    """Builds the stack's image cold, then after a code-only change, ROUNDS times; and a single-stage twin."""
    cold, rebuild = [], []
    for _ in range(ROUNDS):
        cold.append(timed(lambda: stack.compose("build", "--no-cache", timeout=1500)))
        with open(stack.dir / "app/views.py", "a") as views:
            # Unique to this run: BuildKit's cache outlives the images and would recognise a repeat.
            views.write(f"\n# bench: a code-only change, {time.time_ns()}\n")
        rebuild.append(timed(lambda: stack.compose("build")))

    (stack.dir / "Dockerfile.single-stage").write_text(single_stage((stack.dir / "Dockerfile").read_text()))
    docker_build(stack.dir, SINGLE_STAGE, "Dockerfile.single-stage")
    return Image(cold, rebuild, size_mb(IMAGE), size_mb(SINGLE_STAGE))
