"""The machine the numbers come from, and the one Markdown table: measurements, then the targets
the defaults should reach, each as a ratio and met / not met.

A target compares setups measured in pairs: round by round, its setups run one after the other,
so each round gives one ratio between runs taken moments apart. The target is decided on the
median of those per-round ratios, and their spread (lowest to highest) is shown beside it: a
spread that straddles the bound says the machine, not the setup, decided that round."""

import datetime
import operator
import os
import platform
import statistics

from tests.harness import BASE_IMAGE, SESSION, run


def machine():
    """What to quote with the numbers. Load and other containers tell whether the machine was busy."""
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    base = run(["docker", "image", "inspect", "-f", "{{.Id}} {{.Size}}", BASE_IMAGE]).stdout.split()
    wrk = run(["wrk", "-v"], check=False)
    return {
        "CPUs": len(os.sched_getaffinity(0)),
        "memory": f"{mem_kib / 2**20:.1f} GiB",
        "kernel": platform.release(),
        "Docker engine": run(["docker", "version", "-f", "{{.Server.Version}}"]).stdout.strip(),
        "Compose": run(["docker", "compose", "version", "--short"]).stdout.strip(),
        "base image": f"{BASE_IMAGE} ({base[0][7:19]}, {int(base[1]) / 1e6:.0f} MB)",
        "load generator": (wrk.stdout + wrk.stderr).split(" [")[0].strip(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def busy():
    """Load average (1 min) and containers running that are not ours: other test runs, say."""
    ours = f"label=com.docker.compose.project=sitekit-bench-{SESSION}"
    mine = set(run(["docker", "ps", "-q", "--filter", ours]).stdout.split())
    others = set(run(["docker", "ps", "-q"]).stdout.split()) - mine
    return f"load {os.getloadavg()[0]:.2f}, {len(others)} other containers"


def per_round(ours, theirs):
    """The ratio of two setups' measurements, round by round (one list entry per round each)."""
    assert len(ours) == len(theirs), f"unpaired rounds: {len(ours)} against {len(theirs)}"
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def spread(values, unit="", digits=2):
    """Per-round values' spread as text, as in " (0.70–0.81×, 3 rounds)"; "" for a single value."""
    if len(values) < 2:
        return ""
    return f" ({min(values):.{digits}f}–{max(values):.{digits}f}{unit}, {len(values)} rounds)"


class Table:
    def __init__(self):
        self.rows, self.targets = [], []

    def add(self, measurement, setup, result):
        self.rows.append((measurement, setup, str(result), "", "", ""))

    def target(self, what, detail, ratios, compare, bound):
        """ratios: one per round (per_round()), or a single number for what does not vary (a size).
        compare: "≥" or "≤", against bound, a ratio; met or not on the median."""
        ratios = ratios if isinstance(ratios, list) else [ratios]
        median = statistics.median(ratios)
        met = {"≥": operator.ge, "≤": operator.le}[compare](median, bound)
        measured = f"{median:.2f}×" + spread(ratios, "×")
        self.targets.append((f"**Target:** {what}", detail, "", f"{compare} {bound:g}×", measured, met))

    def markdown(self):
        head = ("Measurement", "Setup", "Result", "Target", "Measured", "Met")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows + self.targets:
            *cells, met = row
            mark = "" if met == "" else ("met" if met else "**not met**")
            lines.append("| " + " | ".join([*cells, mark]) + " |")
        return "\n".join(lines)


def render(info, table):
    facts = "\n".join(f"- {key}: {value}" for key, value in info.items())
    return f"{facts}\n\n{table.markdown()}\n"
