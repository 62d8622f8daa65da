"""The project's nginx site (nginx/sitekit.conf) run by this machine's nginx binary, with only its
ports, certificate and paths pointed at a stack: TLS ends here as on the VPS."""

import os
import re
import shutil
from pathlib import Path

from tests.harness import http
from tests.harness.pg import free_port
from tests.harness.stack import REPO, run


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
        # The upstream include, as shipped (port 6868) but pointed at the stack: scripts/deploy.sh
        # rewrites it (NGINX_UPSTREAM) to switch slots.
        self.upstream = self.dir / "sitekit-upstream.conf"
        shipped = (REPO / "nginx/sitekit-upstream.conf").read_text()
        self.upstream.write_text(shipped.replace("127.0.0.1:6868;", f"127.0.0.1:{stack.port};"))
        site = (REPO / "nginx/sitekit.conf").read_text()
        replacements = {
            r"listen 80\b": f"listen 127.0.0.1:{self.http_port}",  # options (ssl, default_server) kept
            r"listen 443\b": f"listen 127.0.0.1:{self.https_port}",
            r"listen \[::\]:\d+[^;]*;": "",
            r"server_name example\.com www\.example\.com;": "server_name localhost;",
            r"/etc/nginx/sitekit-upstream\.conf": str(self.upstream),
            r"root /srv/sitekit;": f"root {stack.dir};",
            r"/etc/letsencrypt/live/example\.com/fullchain\.pem": str(self.cert),
            r"/etc/letsencrypt/live/example\.com/privkey\.pem": str(self.key),
            r"/var/www/letsencrypt": str(self.dir),
        }
        for pattern, replacement in replacements.items():
            site, count = re.subn(pattern, replacement, site)
            assert count, f"nginx/sitekit.conf no longer contains {pattern!r}: update tests/harness/nginx.py"
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

    def request(self, path, *, https=True, **options):
        """One request to nginx (see http.request); HTTPS unless told. Returns (status, headers, text)."""
        return http.request(self.https_port if https else self.http_port, path, https=https, **options)
