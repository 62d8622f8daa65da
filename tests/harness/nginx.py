"""The project's nginx site, installed by `make nginx-site` (nginx/site.conf rendered for a clone,
nginx/default-server.conf once) into a directory of its own and run by this machine's nginx binary,
with only its ports, certificate and ACME folder pointed at the test's: TLS ends here as on the VPS.
Several sites share one nginx as on one host: Nginx(root, other_stack, domain=..., beside=first)."""

import os
import re
from pathlib import Path

from tests.harness import http
from tests.harness.pg import free_port
from tests.harness.stack import run


class Nginx:
    """A stack's nginx site (host name `domain`), in an nginx of its own or `beside` another site's."""

    def __init__(self, root, stack, *, domain="localhost", beside=None):
        self.host, self.site = domain, stack.name
        if beside:
            self.dir, self.http_port, self.https_port = beside.dir, beside.http_port, beside.https_port
            self.cert, self.key = beside.cert, beside.key
        else:
            self.dir = Path(root) / f"nginx-{stack.name}"
            self.dir.mkdir(parents=True)
            self.http_port, self.https_port = free_port(), free_port()
            self.cert, self.key = self.dir / "cert.pem", self.dir / "key.pem"
            run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
                + ["-subj", "/CN=localhost", "-keyout", self.key, "-out", self.cert])  # fmt: skip
        # As the operator installs it, in the clone (its SITE and APP_PORT said, as its .env does).
        install = ["make", "-s", "nginx-site", f"DOMAIN={domain}", f"NGINX_DIR={self.dir}", "NGINX=true"]
        install += [f"SITE={stack.name}", f"APP_PORT={stack.port}"]
        run(install, cwd=stack.dir)
        self.upstream = self.dir / f"{stack.name}-upstream.conf"  # scripts/deploy.sh rewrites it
        self.site_file = self.dir / "sites-enabled" / f"{stack.name}.conf"
        self._point(self.site_file, {
            r"/etc/letsencrypt/live/[^/]+/fullchain\.pem": str(self.cert),
            r"/etc/letsencrypt/live/[^/]+/privkey\.pem": str(self.key),
            r"/var/www/letsencrypt": str(self.dir),
        })  # fmt: skip
        # make nginx-site installs the clone's catch-all each time (the newest replaces the host's).
        self._point(self.dir / "sites-enabled" / "default-server.conf", {})
        user = "user www-data;" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
include {stack.dir}/nginx/worker-limits.conf;
http {{
    include /etc/nginx/mime.types;
    access_log {self.dir}/access.log;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    include {self.dir}/sites-enabled/*.conf;
}}
""")
        for path in (root, stack.dir, self.dir):
            Path(path).chmod(0o755)  # nginx's workers (www-data) must traverse to the static folder

    def _point(self, path, replacements):
        """The file's listen lines on this nginx's loopback ports (::1 for IPv6 ones), and the rest."""
        replacements = {
            r"listen 80\b": f"listen 127.0.0.1:{self.http_port}",  # options (ssl, default_server) kept
            r"listen 443\b": f"listen 127.0.0.1:{self.https_port}",
            r"listen \[::\]:80\b": f"listen [::1]:{self.http_port}",
            r"listen \[::\]:443\b": f"listen [::1]:{self.https_port}",
            **replacements,
        }
        text = path.read_text()
        for pattern, replacement in replacements.items():
            text, count = re.subn(pattern, replacement, text)
            assert count, f"{path.name} no longer contains {pattern!r}: update tests/harness/nginx.py"
        path.write_text(text)

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
        """One request to this site through nginx (see http.request); HTTPS unless told.
        Returns (status, headers, text)."""
        options.setdefault("host", self.host)
        return http.request(self.https_port if https else self.http_port, path, https=https, **options)
