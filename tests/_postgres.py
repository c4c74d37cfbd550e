"""Find or start PostgreSQL for the test session (DESIGN.md §11).

Order: ``$DATASTORE_LITE_TEST_POSTGRES_URL``; a server on 127.0.0.1:5432 (user postgres,
trust auth); else a throwaway cluster started with the machine's ``initdb``/``pg_ctl``.
Each test session gets a fresh database, dropped at the end; each test a fresh schema.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        for version in sorted(os.listdir(base), reverse=True):
            candidate = os.path.join(base, version, "bin", name)
            if os.path.exists(candidate):
                return candidate
    return None


@dataclass
class PostgresServer:
    """A reachable server: its admin URL and, for a throwaway cluster, how to stop it."""

    admin_url: str
    cluster_dir: str | None = None
    pg_ctl: str | None = None
    databases: list[str] = field(default_factory=list)

    def create_database(self) -> str:
        name = f"dl_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url_for(name)

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"

    def stop(self) -> None:
        for name in self.databases:
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:
                pass
        if self.cluster_dir and self.pg_ctl:
            subprocess.run(
                [self.pg_ctl, "-D", self.cluster_dir, "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
            )
            shutil.rmtree(self.cluster_dir, ignore_errors=True)


def start_throwaway() -> PostgresServer | None:
    initdb, pg_ctl = _find_binary("initdb"), _find_binary("pg_ctl")
    if not initdb or not pg_ctl:
        return None
    cluster = tempfile.mkdtemp(prefix="dl-pg-")
    env = dict(os.environ)
    user_args: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; a throwaway cluster needs an unprivileged user.
        return None
    result = subprocess.run(
        [initdb, "-D", cluster, "-U", "postgres", "--auth=trust", "-E", "UTF8", *user_args],
        capture_output=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(cluster, ignore_errors=True)
        return None
    port = _free_port()
    result = subprocess.run(
        [
            pg_ctl,
            "-D",
            cluster,
            "-w",
            "-l",
            os.path.join(cluster, "log"),
            "-o",
            f"-p {port} -k {cluster} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(cluster, ignore_errors=True)
        return None
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    for _ in range(50):
        if _reachable(url):
            return PostgresServer(url, cluster, pg_ctl)
        time.sleep(0.2)
    return None


def find_server() -> tuple[PostgresServer | None, str]:
    """A server and a description of where it came from (or why there is none)."""
    env_url = os.environ.get("DATASTORE_LITE_TEST_POSTGRES_URL")
    if env_url:
        if _reachable(env_url):
            return PostgresServer(env_url), f"$DATASTORE_LITE_TEST_POSTGRES_URL ({env_url})"
        return None, f"$DATASTORE_LITE_TEST_POSTGRES_URL={env_url} is not reachable"
    if _reachable(DEFAULT_URL):
        return PostgresServer(DEFAULT_URL), "server on 127.0.0.1:5432"
    server = start_throwaway()
    if server is not None:
        return server, f"throwaway cluster in {server.cluster_dir}"
    return None, "no server on 127.0.0.1:5432 and no initdb/pg_ctl to start one"
