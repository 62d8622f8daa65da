"""`make deploy` and `make rollback` under load, measured: the requests that failed (a number, not a
pass/fail), the seconds from the command to the other version answering through nginx, and the
memory of the whole app while both versions run. A clone of its own, brought up by `make up` as on
a VPS, with the project's nginx site in front (scripts/deploy.sh rewrites its upstream file)."""

import threading
import time

from tests.bench.load import memory_mib
from tests.harness import run
from tests.harness.deploy import deployed_site
from tests.harness.traffic import Load


class BothProjects:
    """The peak of the summed memory of every container of both projects (the new version's
    preparation included), sampled while at least two of them run."""

    def __init__(self, app):
        self.projects, self.peak, self.running = (app.name, f"{app.name}-next"), 0.0, True
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()

    def sample(self):
        while self.running:
            ids = []
            for project in self.projects:
                label = f"label=com.docker.compose.project={project}"
                ids += run(["docker", "ps", "-q", "--filter", label]).stdout.split()
            try:
                total = sum(memory_mib(container) for container in ids)
            except (AssertionError, OSError, ValueError):  # a container stopped while read
                continue
            if len(ids) >= 2:
                self.peak = max(self.peak, total)
            time.sleep(0.2)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


def measure(table, root, cluster):
    with deployed_site(root, cluster, "sitekit-bench-deploy", "bench_deploy") as app:
        template = app.dir / "templates/base.html"
        template.write_text(template.read_text() + "\n{# bench: v2 #}\n")
        for command, revision, which in (("deploy", "v2", "new"), ("rollback", "v1", "old")):
            memory = BothProjects(app)
            with Load(app) as load:
                started = time.monotonic()
                app.make(command, **({"REVISION": revision} if command == "deploy" else {}))
            both = memory.stop()
            lost = len(load.posted) - load.rows()
            table.add(
                f"Requests failed during `make {command}`",
                f"GETs and form posts via nginx, {len(load.answers)} requests",
                f"{len(load.failures())} failed, {lost} of {len(load.posted)} posts lost",
            )
            serving = load.first_answer_from(revision) - started
            table.add(f"`make {command}` to the {which} version serving", "via nginx", f"{serving:.1f} s")
            table.add(
                "Memory of the app, both versions running", f"`make {command}`", f"{both:.0f} MiB (peak)"
            )
