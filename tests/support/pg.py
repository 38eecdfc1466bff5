"""A throw-away PostgreSQL cluster for the tests: initdb and pg_ctl as the ``postgres`` user
(``runuser``), in a temporary folder that user can enter, listening on a unix socket there
only (no TCP port at all). Skipped where the server binaries or the user are missing."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.waiting import wait_until

PG_USER = "postgres"
PASSWORD_USER = "bshmd_pw"
PASSWORD = "Tr0ub4dor-never-printed"


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return roots[0] if roots else None


def available() -> str:
    """'' when a cluster can be started here, else why not."""
    if _bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"there is no {PG_USER!r} user to run the server as"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "starting the server as the postgres user needs root and runuser"
    return ""


class Cluster:
    """One server: ``url`` for clients, ``stop``/``start``/``restart`` for failure tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.log = root / "server.log"
        self.bindir = _bindir()
        self.port = 5432

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", PG_USER, "--", *args], check=check, capture_output=True,
                              text=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@/bshmd?host={self.socket_dir}&port={self.port}"

    def admin_url(self, db: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@/{db}?host={self.socket_dir}&port={self.port}"

    def init(self) -> None:
        user = pwd.getpwnam(PG_USER)
        for path in (self.root, self.socket_dir):
            path.mkdir(exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(self.root, 0o755)
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", PG_USER,
                          "--no-sync", "-E", "UTF8")
        # One role must give a password (scram), so that password handling is tested for real.
        hba = (self.data / "pg_hba.conf").read_text()
        (self.data / "pg_hba.conf").write_text(f"local all {PASSWORD_USER} scram-sha-256\n" + hba)
        # fsync off (no test survives a power cut anyway), but commits stay synchronous: an
        # immediate stop (the restart tests) must not lose an acknowledged transaction.
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = ''\nunix_socket_directories = '{self.socket_dir}'\n"
                       "fsync = off\nmax_connections = 200\n")
        self.start()
        self.sql(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
        self.sql(f"CREATE DATABASE bshmd OWNER {PASSWORD_USER}")

    def start(self) -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                          "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                          check=False)

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def sql(self, statement: str, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.admin_url(db), autocommit=True) as conn:
            conn.execute(statement)

    def reset(self) -> None:
        """A fresh, empty ``bshmd`` database (each test starts from nothing)."""
        def dropped() -> bool:
            try:
                self.sql("DROP DATABASE IF EXISTS bshmd WITH (FORCE)")
            except Exception:  # noqa: BLE001 - the server may still be coming back
                return False
            return True

        # Then create it anyway: its error says more than a timeout would.
        wait_until(dropped, 10, interval=0.2, fail=False)
        self.sql(f"CREATE DATABASE bshmd OWNER {PASSWORD_USER}")

    def password_url(self, with_password: bool = False) -> str:
        secret = f":{PASSWORD}" if with_password else ""
        return f"postgresql://{PASSWORD_USER}{secret}@/bshmd?host={self.socket_dir}&port={self.port}"


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    # Not under the test's tmp_path: pytest's base folder is 0700 root, which postgres cannot enter.
    root = Path(tempfile.mkdtemp(prefix="bshmd-pg-"))
    os.chmod(root, 0o755)
    server = Cluster(root)
    try:
        server.init()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
