"""Flask integration: one :class:`~datastore_lite.Client` per app and per process.

Usage (the application-factory pattern; ``DatastoreLite(app)`` works too)::

    from flask import Flask
    from datastore_lite.contrib.flask import DatastoreLite

    datastore = DatastoreLite()

    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["DATASTORE_LITE_URL"] = "sqlite:///photos.db"
        datastore.init_app(app)
        return app

    # in a view: datastore.client.put(...)

Configuration keys mirror the environment variables of DESIGN.md §4 (table in
:data:`CONFIG_KEYS`). A key that is absent or ``None`` leaves the setting to the
environment variable, then to the default, exactly as ``Client()`` does; a key that is set
wins over the environment.

Process model: the client is created lazily, at the first use in each process, so it is
safe under gunicorn's pre-fork model (``--preload`` included): a worker never uses
database connections it inherited from the master. Each request's teardown rolls back a
batch or transaction the request left open on the client's stack, and hands the request
thread's database connection back to the pool (see :func:`_release_thread_connection`).
Clients are closed by :meth:`DatastoreLite.close`, when their app is garbage-collected, or
at process exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

try:
    from flask import Flask, current_app, has_app_context
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        "datastore_lite.contrib.flask needs Flask: pip install 'datastore-lite[flask]'",
        name=exc.name,
    ) from exc

from .. import exceptions
from .._consistency import Eventual, Strong, parse_policy
from .._profiles import get_profile
from .._throttle import GroupWriteLimit
from ..batch import Batch
from ..client import Client
from ..transaction import Transaction

__all__ = ["CONFIG_KEYS", "EXTENSION_NAME", "DatastoreLite"]

log = logging.getLogger("datastore_lite.contrib.flask")

#: The key of the extension in ``app.extensions``.
EXTENSION_NAME = "datastore_lite"

#: Flask config key -> ``Client`` keyword argument. ``DATASTORE_LITE_PROJECT`` wins over
#: ``DATASTORE_DATASET`` (the emulator's variable, also read from the environment).
CONFIG_KEYS: Mapping[str, str] = {
    "DATASTORE_LITE_URL": "url",
    "DATASTORE_LITE_PROJECT": "project",
    "DATASTORE_DATASET": "project",
    "DATASTORE_LITE_NAMESPACE": "namespace",
    "DATASTORE_LITE_INDEX_YAML": "index_yaml",
    "DATASTORE_LITE_PROFILE": "profile",
    "DATASTORE_LITE_CONSISTENCY": "consistency",
    "DATASTORE_LITE_WRITE_LIMIT": "write_limit",
    "DATASTORE_LITE_SEED": "seed",
}


def _client_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Client`` keyword arguments a Flask config asks for, checked.

    Keys that are absent or ``None`` are left out, so ``Client`` falls back to the
    environment variables and the defaults.

    Raises:
        ValueError: A value of the wrong type or form; the message names the config key.
    """
    kwargs: dict[str, Any] = {}
    for key, argument in CONFIG_KEYS.items():
        value = config.get(key)
        if value is None or argument in kwargs:
            continue
        try:
            kwargs[argument] = _check(argument, value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Flask config {key}: {exc}") from None
    return kwargs


def _check(argument: str, value: Any) -> Any:
    """Validate (and normalise) one config value for the ``Client`` argument it feeds."""
    if argument in ("url", "project", "namespace"):
        if not isinstance(value, str):
            raise TypeError(f"expected a string, not {value!r}")
        return value
    if argument == "index_yaml":
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"expected a path, not {value!r}")
        return os.fspath(value)
    if argument == "profile":
        return get_profile(value).name
    if argument == "consistency":
        if not isinstance(value, (str, Strong, Eventual)):
            raise TypeError(
                f"expected 'strong', 'hrd', 'lag=<s>', 'probability=<p>', not {value!r}"
            )
        return parse_policy(value)
    if argument == "write_limit":
        if isinstance(value, GroupWriteLimit):
            return value
        if not isinstance(value, str):
            raise TypeError(f"expected a GroupWriteLimit or 'rate[:burst[:mode]]', not {value!r}")
        return GroupWriteLimit.parse(value)
    # seed: an int, or its text (``app.config.from_prefixed_env()`` gives ints already)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"expected an integer, not {value!r}")
    return int(value)


class _ClientSlot:
    """The client of one app in the current process, created on first use."""

    def __init__(self, app_name: str) -> None:
        self.app_name = app_name
        self.lock = threading.Lock()
        self.client: Client | None = None
        self.pid = os.getpid()
        # Clients inherited through fork: kept referenced and never used or closed here,
        # so their sockets and SQLite handles (the parent's) are not finalised in the child.
        self.inherited: list[Client] = []

    def get(self, config: Mapping[str, Any]) -> Client:
        if self.pid != os.getpid():
            self.after_fork()
        client = self.client
        if client is not None:
            return client
        with self.lock:
            if self.client is None:
                self.client = Client(**_client_kwargs(config))
                log.debug("datastore_lite: %r opened for app %r", self.client, self.app_name)
            return self.client

    def peek(self) -> Client | None:
        """The client if this process has created one (never creates it)."""
        if self.pid != os.getpid():
            return None
        return self.client

    def after_fork(self) -> None:
        # Runs first thing in a forked child (os.register_at_fork) and again, as a guard,
        # on the first use after a fork that bypassed it.
        if self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.lock = threading.Lock()
        if self.client is not None:
            self.inherited.append(self.client)
            self.client = None

    def close(self) -> None:
        if self.pid != os.getpid():
            return
        with self.lock:
            client, self.client = self.client, None
        if client is not None:
            client.close()


# Every slot in this process: for the fork hook and for closing at exit.
_SLOTS: weakref.WeakSet[_ClientSlot] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for slot in list(_SLOTS):
        slot.after_fork()


def _close_all_at_exit() -> None:
    for slot in list(_SLOTS):
        try:
            slot.close()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            log.exception("datastore_lite: closing a client at exit failed")


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)


class DatastoreLite:
    """The Flask extension: ``datastore.client`` is the current app's client.

    Args:
        app: An app to set up at once (else call :meth:`init_app`, once per app).

    The extension registers itself as ``app.extensions["datastore_lite"]``. One instance
    may serve several apps (each gets its own client); in a view, :attr:`client` is the
    client of ``current_app``.

    Example:
        >>> from flask import Flask
        >>> app = Flask("doc")
        >>> app.config.update(DATASTORE_LITE_URL="sqlite://", DATASTORE_LITE_PROJECT="doc")
        >>> datastore = DatastoreLite(app)
        >>> with app.app_context():
        ...     datastore.client.project
        'doc'
        >>> datastore.close(app)
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.app = app
        self._slots: weakref.WeakKeyDictionary[Flask, _ClientSlot] = weakref.WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the extension on ``app``; the client is created at its first use.

        The config is checked now (so a typo fails at start-up, not at the first request)
        and read again when the client is created.

        Raises:
            RuntimeError: ``app`` is already registered with another ``DatastoreLite``.
            ValueError: A ``DATASTORE_LITE_*`` config value has the wrong type or form.
        """
        registered = app.extensions.get(EXTENSION_NAME)
        if registered is self:
            return
        if registered is not None:
            raise RuntimeError(
                f"the Flask app {app.name!r} is already registered with another DatastoreLite "
                "instance; use that one (current_app.extensions['datastore_lite'])"
            )
        _client_kwargs(app.config)
        slot = _ClientSlot(app.name)
        _SLOTS.add(slot)
        self._slots[app] = slot
        # A garbage-collected app (tests make many) closes its client.
        weakref.finalize(app, slot.close)
        app.extensions[EXTENSION_NAME] = self
        app.teardown_request(self._teardown_request)

    # -- the client ------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client of the current app (``current_app``, else the app given to the
        constructor), created in this process on first use.

        Raises:
            RuntimeError: Outside an application context with no app bound, or the app was
                not registered with this extension.
        """
        return self.get_client()

    def get_client(self, app: Flask | None = None) -> Client:
        """The client of ``app`` (default: as :attr:`client`) in this process."""
        app = self._resolve(app)
        return self._slot(app).get(app.config)

    def close(self, app: Flask | None = None) -> None:
        """Close the app's client in this process; the next use opens a new one."""
        app = self._resolve(app)
        self._slot(app).close()

    def _resolve(self, app: Flask | None) -> Flask:
        if app is not None:
            return app
        if has_app_context():
            found: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            if found in self._slots or self.app is None:
                return found
        if self.app is not None:
            return self.app
        raise RuntimeError(
            "Working outside of application context: use datastore.client inside a request "
            "or `with app.app_context():`, or pass the app to get_client(app)."
        )

    def _slot(self, app: Flask) -> _ClientSlot:
        slot = self._slots.get(app)
        if slot is None:
            raise RuntimeError(
                f"the Flask app {app.name!r} is not registered with this DatastoreLite "
                "instance: call datastore.init_app(app) first"
            )
        return slot

    # -- request teardown ------------------------------------------------------------------

    def _teardown_request(self, exc: BaseException | None) -> None:
        slot = self._slots.get(current_app._get_current_object())  # type: ignore[attr-defined]
        client = slot.peek() if slot is not None else None
        if client is None:
            return
        _abandon_open_batches(client)
        _release_thread_connection(client)


def _abandon_open_batches(client: Client) -> int:
    """Roll back every batch and transaction left open on this thread's stack.

    A request that ends with a transaction still open (an ``__enter__`` without its
    ``__exit__``, a streamed generator cut short) must not leak it into the next request
    the same thread serves. Returns how many were rolled back.
    """
    count = 0
    while client.current_batch is not None:
        batch = client._pop_batch()
        count += 1
        kind = "transaction" if isinstance(batch, Transaction) else "batch"
        log.warning("datastore_lite: a request ended with a %s still open; rolled back", kind)
        status = batch._status
        try:
            if status == Batch._IN_PROGRESS or (
                isinstance(batch, Transaction) and status == Batch._INITIAL
            ):
                batch.rollback()
        except exceptions.DatastoreLiteError:  # pragma: no cover - defensive
            log.exception("datastore_lite: rolling back a leftover %s failed", kind)
    return count


def _release_thread_connection(client: Client) -> None:
    """Give the calling thread's database connection back to the pool.

    A server that runs each request in a new thread (``flask run``: werkzeug's threaded dev
    server) would otherwise hold a connection per finished thread until the thread object
    is collected; releasing at the end of each request keeps at most one connection per
    *concurrent* request, and the pool keeps it open, so the next checkout is cheap.
    """
    try:
        client._datastore_api.backend.release_thread_connection()
    except Exception:  # pragma: no cover - never fail a request over housekeeping
        log.exception("datastore_lite: releasing a thread's connection failed")
