"""The Flask extension: registration, config, one client per app and process, teardown.

The photo-timeline app on top of it is tested in tests/behaviour/test_flask_app.py and,
under a real gunicorn, in tests/behaviour/test_flask_gunicorn.py.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app

from datastore_lite import Client, Entity, Eventual, GroupWriteLimit, Strong
from datastore_lite import exceptions as exc
from datastore_lite.contrib import flask as contrib_flask
from datastore_lite.contrib.flask import CONFIG_KEYS, DatastoreLite

ENV_VARS = (
    "DATASTORE_LITE_URL",
    "DATASTORE_DATASET",
    "DATASTORE_PROJECT_ID",
    "GOOGLE_CLOUD_PROJECT",
    "DATASTORE_LITE_INDEX_YAML",
    "DATASTORE_LITE_PROFILE",
    "DATASTORE_LITE_CONSISTENCY",
    "DATASTORE_LITE_WRITE_LIMIT",
    "DATASTORE_LITE_SEED",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DATASTORE_* variable of the caller's shell leaks in; no ./index.yaml is found."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ext() -> Iterator[DatastoreLite]:
    extension = DatastoreLite()
    yield extension
    for app in list(extension._slots):
        extension.close(app)


def make_app(ext: DatastoreLite, name: str = "t", **config: Any) -> Flask:
    app = Flask(name)
    config.setdefault("DATASTORE_LITE_URL", "sqlite://")
    config.setdefault("DATASTORE_LITE_INDEX_YAML", os.devnull)
    app.config.update(config)
    ext.init_app(app)
    return app


class CountingClient(Client):
    made: list[Client] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        CountingClient.made.append(self)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[Client]:
    CountingClient.made = []
    monkeypatch.setattr(contrib_flask, "Client", CountingClient)
    return CountingClient.made


# -- registration -----------------------------------------------------------------------------


def test_init_app_registers_the_extension(ext: DatastoreLite) -> None:
    app = make_app(ext)
    assert app.extensions["datastore_lite"] is ext
    with app.app_context():
        assert current_app.extensions["datastore_lite"].client is ext.client


def test_constructor_with_app_binds_it(ext: DatastoreLite) -> None:
    app = Flask("bound")
    app.config.update(DATASTORE_LITE_URL="sqlite://", DATASTORE_LITE_PROJECT="bound")
    bound = DatastoreLite(app)
    try:
        # no app context needed when the extension was built with its app
        assert bound.client.project == "bound"
        assert bound.get_client(app) is bound.client
    finally:
        bound.close()


def test_init_app_twice_is_harmless_but_a_second_extension_is_refused(ext: DatastoreLite) -> None:
    app = make_app(ext)
    ext.init_app(app)
    with pytest.raises(RuntimeError, match="already registered with another DatastoreLite"):
        DatastoreLite().init_app(app)


def test_client_outside_an_app_context_is_an_error(ext: DatastoreLite) -> None:
    make_app(ext)
    with pytest.raises(RuntimeError, match="outside of application context"):
        ext.client  # noqa: B018


def test_an_unregistered_app_is_an_error(ext: DatastoreLite) -> None:
    stranger = Flask("stranger")
    with stranger.app_context(), pytest.raises(RuntimeError, match="init_app"):
        ext.client  # noqa: B018
    with pytest.raises(RuntimeError, match="init_app"):
        ext.get_client(stranger)


def test_flask_stays_an_optional_dependency() -> None:
    code = (
        "import sys, datastore_lite, datastore_lite.contrib\n"
        "assert 'flask' not in sys.modules, 'datastore_lite imported flask'\n"
        "sys.modules['flask'] = None  # as if Flask were not installed\n"
        "try:\n"
        "    import datastore_lite.contrib.flask\n"
        "except ModuleNotFoundError as e:\n"
        "    assert \"pip install 'datastore-lite[flask]'\" in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- configuration ----------------------------------------------------------------------------


def test_config_keys_reach_the_client(ext: DatastoreLite, tmp_path: Path) -> None:
    index_yaml = tmp_path / "index.yaml"
    index_yaml.write_text(
        "indexes:\n- kind: Photo\n  ancestor: yes\n  properties:\n  - name: date\n"
    )
    app = make_app(
        ext,
        DATASTORE_LITE_URL=f"sqlite:///{tmp_path}/store.db",
        DATASTORE_LITE_PROJECT="photo-app",
        DATASTORE_LITE_NAMESPACE="ns1",
        DATASTORE_LITE_INDEX_YAML=index_yaml,
        DATASTORE_LITE_PROFILE="firestore",
        DATASTORE_LITE_CONSISTENCY="probability=0.5",
        DATASTORE_LITE_WRITE_LIMIT="2:3:delay",
        DATASTORE_LITE_SEED="1234",
    )
    with app.app_context():
        client = ext.client
    assert client.url == f"sqlite:///{tmp_path}/store.db"
    assert client.project == "photo-app"
    assert client.namespace == "ns1"
    assert client.index_yaml == str(index_yaml)
    assert client.profile.name == "firestore"
    assert client.consistency_policy == Eventual(probability=0.5)
    assert client.write_limit == GroupWriteLimit(rate=2.0, burst=3, on_exceed="delay")
    assert client.seed == 1234


def test_config_accepts_objects(ext: DatastoreLite) -> None:
    limit = GroupWriteLimit(rate=5.0)
    app = make_app(
        ext,
        DATASTORE_LITE_CONSISTENCY=Strong(),
        DATASTORE_LITE_WRITE_LIMIT=limit,
        DATASTORE_LITE_SEED=7,
    )
    client = ext.get_client(app)
    assert client.consistency_policy == Strong()
    assert client.write_limit is limit
    assert client.seed == 7


def test_datastore_dataset_names_the_project_unless_datastore_lite_project_does(
    ext: DatastoreLite,
) -> None:
    assert ext.get_client(make_app(ext, "a", DATASTORE_DATASET="ds")).project == "ds"
    both = make_app(ext, "b", DATASTORE_DATASET="ds", DATASTORE_LITE_PROJECT="lite")
    assert ext.get_client(both).project == "lite"


def test_unset_keys_fall_back_to_the_environment(
    ext: DatastoreLite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASTORE_DATASET", "from-env")
    monkeypatch.setenv("DATASTORE_LITE_CONSISTENCY", "lag=3")
    monkeypatch.setenv("DATASTORE_LITE_SEED", "99")
    # None counts as unset: the environment decides
    client = ext.get_client(make_app(ext, DATASTORE_LITE_CONSISTENCY=None))
    assert client.project == "from-env"
    assert client.consistency_policy == Eventual(lag=3.0)
    assert client.seed == 99


def test_config_wins_over_the_environment(
    ext: DatastoreLite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATASTORE_DATASET", "from-env")
    monkeypatch.setenv("DATASTORE_LITE_CONSISTENCY", "lag=3")
    app = make_app(ext, DATASTORE_LITE_PROJECT="from-config", DATASTORE_LITE_CONSISTENCY="strong")
    client = ext.get_client(app)
    assert (client.project, client.consistency_policy) == ("from-config", Strong())


def test_the_defaults_are_the_clients(ext: DatastoreLite) -> None:
    app = Flask("defaults")  # no DATASTORE_LITE_* key at all
    ext.init_app(app)
    client = ext.get_client(app)
    assert client.url == "sqlite:///datastore_lite.db"  # in the working directory (tmp_path)
    assert client.project == "default"
    assert client.profile.name == "legacy"
    assert client.consistency_policy == Eventual(lag="hrd")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("DATASTORE_LITE_CONSISTENCY", "sometimes", "consistency must be"),
        ("DATASTORE_LITE_CONSISTENCY", 0.5, "expected 'strong'"),
        ("DATASTORE_LITE_PROFILE", "datastore", "profile must be"),
        ("DATASTORE_LITE_SEED", "abc", "invalid literal"),
        ("DATASTORE_LITE_SEED", True, "expected an integer"),
        ("DATASTORE_LITE_WRITE_LIMIT", 3, "GroupWriteLimit"),
        ("DATASTORE_LITE_URL", 42, "expected a string"),
        ("DATASTORE_LITE_INDEX_YAML", 1, "expected a path"),
    ],
)
def test_bad_config_fails_at_init_app_naming_the_key(
    ext: DatastoreLite, key: str, value: Any, message: str
) -> None:
    app = Flask("bad")
    app.config[key] = value
    with pytest.raises(ValueError, match=f"Flask config {key}: .*{message}"):
        ext.init_app(app)
    assert "datastore_lite" not in app.extensions


def test_every_config_key_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "flask.md").read_text()
    for key in CONFIG_KEYS:
        assert f"`{key}`" in docs, key


# -- one client per app and per process -------------------------------------------------------


def test_the_client_is_created_lazily_once(ext: DatastoreLite, counting: list[Client]) -> None:
    app = make_app(ext)

    @app.get("/")
    def view() -> str:
        return str(id(ext.client))

    assert counting == []  # init_app opens nothing
    test_client = app.test_client()
    ids = {test_client.get("/").text for _ in range(5)}
    assert len(counting) == 1
    assert ids == {str(id(counting[0]))}


def test_each_app_gets_its_own_client(ext: DatastoreLite) -> None:
    one = make_app(ext, "one", DATASTORE_LITE_PROJECT="one")
    two = make_app(ext, "two", DATASTORE_LITE_PROJECT="two")
    with one.app_context():
        assert ext.client.project == "one"
    with two.app_context():
        assert ext.client.project == "two"
    assert ext.get_client(one) is not ext.get_client(two)


def test_threads_racing_for_the_first_use_share_one_client(
    ext: DatastoreLite, counting: list[Client]
) -> None:
    app = make_app(ext)
    barrier = threading.Barrier(8)
    seen: list[int] = []

    def first_use() -> None:
        barrier.wait()
        seen.append(id(ext.get_client(app)))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(counting) == 1
    assert set(seen) == {id(counting[0])}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_client_and_leaves_the_parents_alone(
    ext: DatastoreLite, shared_url: str
) -> None:
    """gunicorn's pre-fork model, with the worst case of --preload: the master used the
    client before forking. The child must not reuse it, and closing the child's clients
    at its exit must not close the parent's connections."""
    app = make_app(ext, DATASTORE_LITE_URL=shared_url, DATASTORE_LITE_CONSISTENCY="strong")
    parent = ext.get_client(app)
    parent.put(Entity(parent.key("Photo", "from-parent")))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 1
        try:
            child = ext.get_client(app)
            child.put(Entity(child.key("Photo", "from-child")))
            ok = child is not parent and child.get(child.key("Photo", "from-parent")) is not None
            contrib_flask._close_all_at_exit()  # what interpreter exit runs
            status = 0 if ok else 2
        finally:
            os.write(write, bytes([status]))
            os._exit(0)
    os.close(write)
    _, wait_status = os.waitpid(pid, 0)
    report = os.read(read, 1)
    os.close(read)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert report == b"\x00"
    assert ext.get_client(app) is parent
    # the parent's connections survived the child's exit
    assert parent.get(parent.key("Photo", "from-child")) is not None
    parent.put(Entity(parent.key("Photo", "after-fork")))


# -- teardown ---------------------------------------------------------------------------------


def test_a_transaction_left_open_is_rolled_back_at_request_teardown(
    ext: DatastoreLite, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(ext, DATASTORE_LITE_CONSISTENCY="strong")

    @app.post("/leak")
    def leak() -> str:
        client = ext.client
        txn = client.transaction()
        txn.__enter__()  # and never __exit__: the request forgets it
        client.put(Entity(client.key("Photo", "leaked")))
        return "ok"

    @app.post("/batch-leak")
    def batch_leak() -> str:
        client = ext.client
        client.batch().__enter__()
        client.put(Entity(client.key("Photo", "batched")))
        return "ok"

    @app.get("/state")
    def state() -> dict[str, Any]:
        client = ext.client
        with client.transaction():  # a fresh transaction works in the same thread
            got = client.get(client.key("Photo", "leaked"))
        return {"open": client.current_batch is not None, "leaked": got is not None}

    test_client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="datastore_lite.contrib.flask"):
        assert test_client.post("/leak").status_code == 200
        assert test_client.post("/batch-leak").status_code == 200
    assert "transaction still open; rolled back" in caplog.text
    assert "batch still open; rolled back" in caplog.text
    assert test_client.get("/state").json == {"open": False, "leaked": False}
    assert ext.get_client(app).get(ext.get_client(app).key("Photo", "batched")) is None


def test_a_request_that_fails_inside_a_transaction_leaves_nothing_open(ext: DatastoreLite) -> None:
    app = make_app(ext, DATASTORE_LITE_CONSISTENCY="strong")

    @app.post("/boom")
    def boom() -> str:
        client = ext.client
        client.transaction().__enter__()
        raise RuntimeError("boom")

    assert app.test_client().post("/boom").status_code == 500
    with app.test_request_context():
        assert ext.client.current_batch is None


def test_teardown_hands_the_request_threads_connection_back(
    ext: DatastoreLite, tmp_path: Path
) -> None:
    app = make_app(ext, DATASTORE_LITE_URL=f"sqlite:///{tmp_path}/t.db")

    @app.get("/")
    def view() -> str:
        ext.client.get(ext.client.key("Photo", 1))
        return "ok"

    pool = ext.get_client(app)._datastore_api.backend.engine.pool
    assert app.test_client().get("/").status_code == 200
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    assert app.test_client().get("/").status_code == 200  # and the next request reconnects
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def test_teardown_before_any_use_opens_nothing(ext: DatastoreLite, counting: list[Client]) -> None:
    app = make_app(ext)
    app.add_url_rule("/", "plain", lambda: "no datastore here")
    assert app.test_client().get("/").text == "no datastore here"
    assert counting == []


def test_close_closes_and_the_next_use_reopens(ext: DatastoreLite) -> None:
    app = make_app(ext)
    first = ext.get_client(app)
    ext.close(app)
    with pytest.raises(exc.InternalServerError, match="closed"):
        first.get(first.key("Photo", 1))
    second = ext.get_client(app)
    assert second is not first
    assert second.get(second.key("Photo", 1)) is None


def test_a_collected_app_closes_its_client(ext: DatastoreLite) -> None:
    app = make_app(ext)
    client = ext.get_client(app)
    del app
    gc.collect()
    with pytest.raises(exc.InternalServerError, match="closed"):
        client.get(client.key("Photo", 1))


def test_process_exit_closes_the_clients_of_this_process(ext: DatastoreLite) -> None:
    app = make_app(ext)
    client = ext.get_client(app)
    contrib_flask._close_all_at_exit()
    with pytest.raises(exc.InternalServerError, match="closed"):
        client.get(client.key("Photo", 1))


# -- library bugs a long-running Flask worker meets -------------------------------------------


def test_abandoned_transactions_expire() -> None:
    now = [1000.0]
    client = Client(project="p", url="sqlite://", index_yaml=os.devnull, clock=lambda: now[0])
    try:
        for _ in range(100):
            client.transaction().begin()  # begun outside any `with`, never finished
        now[0] += 3600  # far past the legacy profile's 60 s limit
        with client.transaction():
            client.get(client.key("Photo", 1))
        assert len(client._datastore_api._txns) == 0
    finally:
        client.close()
