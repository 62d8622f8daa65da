"""The image: build time cold against a rebuild after a code-only change, and the final size
against a single-stage build of the same app (the shipped Dockerfile with its stages merged)."""

import time
from dataclasses import dataclass

from tests.bench.setups import IMAGE, docker_build
from tests.harness import run, tag

SINGLE_STAGE = tag("sitekit-bench-single-stage")


@dataclass
class Image:
    cold_s: float
    rebuild_s: float
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
    """Builds the stack's image twice (cold, then after a code-only change) and a single-stage twin."""
    cold = timed(lambda: stack.compose("build", "--no-cache", timeout=1500))
    with open(stack.dir / "app/views.py", "a") as views:
        # Unique to this run: BuildKit's cache outlives the images and would recognise a repeat.
        views.write(f"\n# bench: a code-only change, {time.time_ns()}\n")
    rebuild = timed(lambda: stack.compose("build"))

    (stack.dir / "Dockerfile.single-stage").write_text(single_stage((stack.dir / "Dockerfile").read_text()))
    docker_build(stack.dir, SINGLE_STAGE, "Dockerfile.single-stage")
    return Image(cold, rebuild, size_mb(IMAGE), size_mb(SINGLE_STAGE))
