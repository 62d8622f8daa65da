"""The one reader and writer of .env files (the format compose's env_file takes): KEY=VALUE lines,
# comments, blank lines. Tests start from .env.example, the production example, and change a few
variables, so what they run is what an operator's first .env would be."""

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def parse(text):
    """The variables a file sets, in order (commented-out ones are not set)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value for key, value in pairs}


def with_changes(text, changes):
    """The file with variables replaced in place, new ones appended, and those given as None removed;
    comments and order kept."""
    lines, seen = [], set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if "=" in line and not line.startswith("#") and key in changes:
            seen.add(key)
            if changes[key] is None:
                continue
            line = f"{key}={changes[key]}"
        lines.append(line)
    lines += [f"{key}={value}" for key, value in changes.items() if key not in seen and value is not None]
    return "\n".join(lines) + "\n"


def example():
    return parse(EXAMPLE.read_text())


def example_with(changes):
    """.env.example's text with the given changes: the production example, adapted."""
    return with_changes(EXAMPLE.read_text(), changes)
