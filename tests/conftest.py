"""Shared fixtures: every storage test runs on SQLite (memory and file) and PostgreSQL.

``backend_url`` is parametrised over the three stores; ``client`` is a strongly
consistent client on it; ``make_client`` builds more clients on the same store.
PostgreSQL: see ``tests/_postgres.py``. With ``CI=true`` a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from datastore_lite import Client
from tests._postgres import PostgresServer, find_server

settings.register_profile(
    "datastore_lite",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=timedelta(seconds=5),
    max_examples=60,
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("datastore_lite"),
    max_examples=500,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "datastore_lite"))

BACKENDS = ["sqlite-memory", "sqlite-file", "postgresql"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | None]:
    server, where = find_server()
    if server is None and IN_CI:
        pytest.fail(f"PostgreSQL is required in CI (CI=true) but unavailable: {where}")
    yield server
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def pg_database(pg_server: PostgresServer | None) -> str | None:
    """A fresh database for this test session (dropped at the end)."""
    if pg_server is None:
        return None
    return pg_server.create_database()


@pytest.fixture
def pg_url(pg_database: str | None) -> Iterator[str]:
    """A URL to a fresh, empty schema in the session's PostgreSQL database."""
    if pg_database is None:
        pytest.skip("PostgreSQL unavailable (set DATASTORE_LITE_TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    base = pg_database.replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}?options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if kind == "sqlite-memory":
        return "sqlite://"
    if kind == "sqlite-file":
        return f"sqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The store under test: each test using it runs once per backend."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A store several processes can open (no in-memory SQLite)."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture
def make_client(backend_url: str) -> Iterator[Callable[..., Client]]:
    """Build clients on the test's store; all are closed at the end."""
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("project", "test-proj")
        kwargs.setdefault("url", backend_url)
        kwargs.setdefault("consistency", "strong")
        kwargs.setdefault("index_yaml", os.devnull)
        client = Client(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    """A strongly consistent legacy-profile client on the store under test."""
    return make_client()
