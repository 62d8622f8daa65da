"""Several sites on one host: two clones of the project, each .env naming its SITE and APP_PORT,
behind one host nginx (two site files made by `make nginx-site`, one catch-all) and one host
PostgreSQL (two databases), each with its fail2ban jail. Deploying, rolling back and pruning one
never touches the other: its containers, images, upstream file and jail stay as they were, and it
serves every request meanwhile."""

import shutil
import subprocess

import pytest

from tests.harness import SESSION, run, wait_for
from tests.harness.deploy import deployed_site
from tests.harness.traffic import Load


@pytest.fixture(scope="module")
def sites(e2e_root, host_db):
    with deployed_site(e2e_root, host_db, "sitekit-one", f"one_{SESSION}", domain="one.localhost") as one:
        beside = {"domain": "two.localhost", "beside": one.nginx}
        with deployed_site(e2e_root, host_db, "sitekit-two", f"two_{SESSION}", **beside) as two:
            yield one, two


@pytest.fixture(scope="module")
def fail2ban(sites, tmp_path_factory):
    """A private fail2ban-server with the distribution's configuration and no jail; each site's
    jail installed by `make fail2ban` into it. Yields the make variables that point there."""
    if not shutil.which("fail2ban-server"):
        pytest.skip("fail2ban is not installed (.ci/provision)")
    tmp = tmp_path_factory.mktemp("fail2ban")
    conf = tmp / "conf"
    shutil.copytree("/etc/fail2ban", conf)
    for path in [*(conf / "jail.d").iterdir(), *(conf / "fail2ban.d").iterdir()]:
        path.unlink()
    (conf / "fail2ban.d" / "test.local").write_text("[DEFAULT]\ndbfile = :memory:\n")
    # Bans only recorded, no firewall touched.
    (conf / "jail.d" / "00-test.local").write_text(f"[DEFAULT]\naction = dummy[target={tmp}/bans]\n")
    client = f"fail2ban-client -c {conf} -s {tmp / 'sock'}"
    server = subprocess.Popen(
        ["fail2ban-server", "-c", conf, "-s", tmp / "sock", "-p", tmp / "pid", "-f", "-x"]
        + ["--logtarget", tmp / "fail2ban.log"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: run([*client.split(), "ping"], check=False).returncode == 0, 60, what="fail2ban")
        variables = {"FAIL2BAN_DIR": str(conf), "FAIL2BAN_CLIENT": client}
        for site in sites:
            installed = site.make("fail2ban", **variables)
            assert installed.returncode == 0, installed.stdout + installed.stderr
        yield variables
    finally:
        run([*client.split(), "stop"], check=False)
        server.wait(timeout=60)


def serving(site):
    return site.nginx.request("/")[1]["X-Revision"]


def container_log(site):
    ids = run(["docker", "compose", "-p", site.name, "ps", "-q", "app"], cwd=site.dir).stdout.split()
    return run(["docker", "inspect", "-f", "{{.LogPath}}", *ids]).stdout.split()


def jail_logs(site, fail2ban):
    status = run([*fail2ban["FAIL2BAN_CLIENT"].split(), "get", f"{site.name}-admin", "logpath"]).stdout
    return [line.split("- ", 1)[1] for line in status.splitlines() if line.startswith(("|-", "`-"))]


def everything_of(site):
    """What a deploy of another site must not touch: containers (with their start), images, the
    upstream file, the static and data folders' contents."""
    label = f"label=com.docker.compose.project={site.name}"
    ids = run(["docker", "ps", "-aq", "--filter", label]).stdout.split()
    template = "{{.Id}} {{.State.StartedAt}} {{.Image}}"
    return {
        "containers": run(["docker", "inspect", "-f", template, *ids]).stdout,
        "images": run(["docker", "image", "ls", site.name, "--format", "{{.ID}} {{.Tag}}"]).stdout,
        "upstream": site.nginx.upstream.read_text(),
        "files": sorted(
            str(p.relative_to(site.dir)) for p in (*site.static.rglob("*"), *site.dir.glob("data/*"))
        ),
    }


def test_each_site_has_its_own_name_port_database_and_nginx_site(sites, fail2ban):
    one, two = sites
    assert serving(one) == serving(two) == "v1"
    # One nginx, the sites told apart by name: each answers from its own container and database.
    assert one.nginx.https_port == two.nginx.https_port and one.port != two.port
    name = f"Only on one {SESSION}"
    values = f"'{name}', 'https://one-{SESSION}.example', 'x', '', now(), true, now()"
    columns = "name, url, description, contact_email, created_at, approved, approved_at"
    insert = f"INSERT INTO app_site ({columns}) VALUES ({values})"  # noqa: S608 (the test's own values)
    one.cluster.psql(insert, database=one.database)
    assert name in one.nginx.request("/")[2] and name not in two.nginx.request("/")[2]
    for site in sites:
        assert jail_logs(site, fail2ban) == container_log(site)  # its own container's log alone
    # The catch-all stays one: an unknown name gets no certificate from either site.
    with pytest.raises(OSError):
        one.nginx.request("/", host="three.localhost")


def test_deploying_one_site_under_load_leaves_the_other_serving_and_untouched(sites, fail2ban):
    one, two = sites
    before = everything_of(two)
    two_jail = jail_logs(two, fail2ban)
    template = one.dir / "templates/base.html"
    original = template.read_text()
    template.write_text(original + "\n{# v2 #}\n")
    try:
        with Load(two) as other, Load(one) as load:
            deployed = one.make("deploy", REVISION="v2", **fail2ban)
    finally:
        template.write_text(original)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert other.failures() == [] and load.failures() == [], deployed.stdout
    assert len(other.posted) >= 3 and other.rows() == len(other.posted)
    assert {answer[2] for answer in other.answers} == {"v1"}  # no request of two reached one's containers
    assert serving(one) == "v2" and serving(two) == "v1"
    assert everything_of(two) == before
    # The deploy pointed one's jail at one's new container; two's jail reads what it read.
    assert jail_logs(one, fail2ban) == container_log(one)
    assert jail_logs(two, fail2ban) == two_jail == container_log(two)

    rolled_back = one.make("rollback", **fail2ban)
    assert rolled_back.returncode == 0, rolled_back.stdout + rolled_back.stderr
    assert serving(one) == "v1" and everything_of(two) == before


def test_pruning_one_sites_images_leaves_the_others(sites):
    one, two = sites
    before = everything_of(two)
    for revision in ("v3", "v4"):  # keep 1: the last deployed (serving) and the previous one stay
        deployed = one.make("deploy", REVISION=revision, KEEP_IMAGES="1")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    tags = set(run(["docker", "image", "ls", one.name, "--format", "{{.Tag}}"]).stdout.split())
    assert {"v4", "v3", "latest"} <= tags and not tags & {"v1", "v2"}, tags
    assert serving(one) == "v4" and serving(two) == "v1"
    assert everything_of(two) == before
