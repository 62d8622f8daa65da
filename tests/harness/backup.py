"""The host's superuser as Debian's default cluster has it, for scripts/backup.sh's restores: the OS
user postgres logs in as the role postgres by peer, on the first pg_hba.conf line."""


def admin_role(cluster):
    """The role and the line in a started cluster (the harness's superuser is named after the site)."""
    cluster.psql("CREATE ROLE postgres SUPERUSER LOGIN")
    hba = cluster.data / "pg_hba.conf"
    hba.write_text("local all postgres peer\n" + hba.read_text())
    cluster.pg_ctl("reload")
    return cluster
