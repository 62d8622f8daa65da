"""The real stack, for end-to-end tests: the project's own docker-compose.yml and nginx site, run
from a copy of the project with only paths, ports and environment overridden, against a throwaway
host PostgreSQL. All traffic stays on this machine: loopback and the project's own containers.
"""

import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from tests.pgcluster import free_port

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("PYTHON_IMAGE", "sitekit/python:3.13-trixie")
SUBNETS = "172.31.0.0/16"  # every stack below takes a /24 from here; pg_hba allows it
_NOT_COPIED = {
    ".git",
    ".venv",
    "venv",
    ".env",
    "static",
    "data",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
}


def _copy_ignore(directory, names):
    """What a fresh clone would not have: local state at the top level, caches anywhere."""
    top = Path(directory) == REPO
    return [name for name in names if name == "__pycache__" or (top and name in _NOT_COPIED)]


def run(argv, *, check=True, timeout=600, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def docker_gateway():
    """The docker0 address: where host.docker.internal (host-gateway) points from a container."""
    out = run(["ip", "-4", "-o", "addr", "show", "docker0"]).stdout
    return out.split()[3].split("/")[0]


def env_file_text(overrides):
    """.env.example with the given variables replaced (or appended): the production example."""
    lines, seen = [], set()
    for line in (REPO / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and key in overrides:
            line, _ = f"{key}={overrides[key]}", seen.add(key)
        lines.append(line)
    lines += [f"{key}={value}" for key, value in overrides.items() if key not in seen]
    return "\n".join(lines) + "\n"


class Stack:
    """One compose project made from a copy of the repository."""

    def __init__(self, root, name, *, subnet_index=68, env=None, image="sitekit-e2e:latest"):
        self.dir = Path(root) / name
        shutil.copytree(REPO, self.dir, ignore=_copy_ignore)
        self.name = name
        self.port = free_port()
        self.subnet = f"172.31.{subnet_index}.0/24"
        self.image = image
        self.static = self.dir / "static"
        self.static.mkdir()
        os.chown(self.static, 33, 33)  # as `make up` does, before Docker would make it root's
        self.write_env(env or {})

    def write_env(self, env):
        base = {
            "PYTHON_IMAGE": BASE_IMAGE,
            "APP_IMAGE": self.image,
            "APP_PORT": self.port,
            "APP_SUBNET": self.subnet,
        }
        (self.dir / ".env").write_text(env_file_text({**base, **env}))

    def compose(self, *args, check=True, timeout=600):
        return run(["docker", "compose", "-p", self.name, *args], cwd=self.dir, check=check, timeout=timeout)

    def up(self, *extra, check=True, timeout=300):
        return self.compose("up", "-d", "--wait", *extra, check=check, timeout=timeout)

    def down(self):
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)

    def logs(self):
        return self.compose("logs", "--no-color", "app", check=False).stdout

    def container(self):
        return self.compose("ps", "-aq", "app").stdout.split()[0]

    def inspect(self, template):
        return run(["docker", "inspect", "-f", template, self.container()]).stdout.strip()

    def state(self):
        return json.loads(self.inspect("{{json .State}}"))


class Nginx:
    """The project's nginx site with its ports, certificate and static path pointed at a stack."""

    def __init__(self, root, stack):
        self.dir = Path(root) / f"nginx-{stack.name}"
        (self.dir / "snippets").mkdir(parents=True)
        self.http_port, self.https_port = free_port(), free_port()
        self.cert, self.key = self.dir / "cert.pem", self.dir / "key.pem"
        run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-keyout",
                self.key,
                "-out",
                self.cert,
            ]
        )
        shutil.copy(REPO / "nginx/sitekit-headers.conf", self.dir / "snippets")
        site = (REPO / "nginx/sitekit.conf").read_text()
        replacements = {
            r"listen 80;": f"listen 127.0.0.1:{self.http_port};",
            r"listen 443 ssl http2;": f"listen 127.0.0.1:{self.https_port} ssl http2;",
            r"listen \[::\]:\d+[^;]*;": "",
            r"server 127\.0\.0\.1:6868;": f"server 127.0.0.1:{stack.port};",
            r"root /srv/sitekit;": f"root {stack.dir};",
            r"/etc/letsencrypt/live/example\.com/fullchain\.pem": str(self.cert),
            r"/etc/letsencrypt/live/example\.com/privkey\.pem": str(self.key),
            r"/var/www/letsencrypt": str(self.dir),
        }
        for pattern, replacement in replacements.items():
            site, count = re.subn(pattern, replacement, site)
            assert count, f"nginx/sitekit.conf no longer contains {pattern!r}: update tests/e2e/stack.py"
        (self.dir / "sitekit.conf").write_text(site)
        user = "user www-data;" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log {self.dir}/access.log;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    include {self.dir}/sitekit.conf;
}}
""")
        for path in (root, stack.dir, self.dir):
            Path(path).chmod(0o755)  # nginx's workers (www-data) must traverse to the static folder

    def nginx(self, *args):
        return run(["nginx", "-p", self.dir, "-c", self.dir / "nginx.conf", *args])

    def start(self):
        self.nginx("-t")
        self.nginx()
        return self

    def stop(self):
        if (self.dir / "nginx.pid").exists():
            self.nginx("-s", "stop")

    def request(
        self, path, *, method="GET", body=None, headers=None, https=True, host="localhost", timeout=30
    ):
        """One request to nginx; redirects are not followed. Returns (status, headers, text)."""
        if https:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own certificate
            conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            return response.status, response.headers, response.read().decode("utf-8", "replace")
        finally:
            conn.close()


def wait_for(predicate, timeout=60, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def workdir():
    path = Path(tempfile.mkdtemp(prefix="sitekit-e2e-"))
    path.chmod(0o755)
    return path
