"""The Client: google-cloud-datastore's ``Client`` API over an embedded store.

Replace ``from google.cloud import datastore`` with ``from datastore_lite import Client``
and keep the rest of the code. The client holds no SQL: it converts public objects and
calls the engine through ``self._datastore_api`` (the eight Datastore verbs).

Configuration (DESIGN.md §4): arguments win over environment variables, which win over
defaults.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from . import exceptions
from ._api import LocalDatastoreAPI
from ._consistency import Eventual, Policy, Strong, parse_policy
from ._consistency_controls import ConsistencyControls
from ._convert import body_to_entity, key_to_ref, ref_to_key
from ._limits import check_ids
from ._profiles import get_profile
from ._throttle import GroupWriteLimit
from ._values import KeyRef
from .aggregation import AggregationQuery
from .backends import open_backend
from .batch import Batch
from .entity import Entity
from .key import Key
from .query import Query
from .transaction import Transaction

__all__ = ["Client"]

log = logging.getLogger("datastore_lite")
T = TypeVar("T")

DEFAULT_URL = "sqlite:///datastore_lite.db"
_PROJECT_ENV = ("DATASTORE_DATASET", "DATASTORE_PROJECT_ID", "GOOGLE_CLOUD_PROJECT")
_RESERVE_IDS_DEPRECATED_MESSAGE = (
    "Client.reserve_ids is deprecated. Please use "
    "Client.reserve_ids_multi or Client.reserve_ids_sequential"
)


def _from_env(name: str, parse: Callable[[str], T]) -> T | None:
    """The parsed value of environment variable ``name`` (``None`` when unset or empty);
    an invalid value is a ``ValueError`` that names the variable."""
    text = os.environ.get(name)
    if not text:
        return None
    try:
        return parse(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}={text!r} is invalid: {exc}") from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("it must be an integer") from None


def _determine_project(project: str | None) -> str:
    if project is not None:
        return project
    for name in _PROJECT_ENV:
        value = os.environ.get(name)
        if value:
            return value
    return "default"


class _LocalStack(threading.local):
    """The per-thread stack of open batches and transactions (as in the official client)."""

    def __init__(self) -> None:
        self.stack: list[Batch] = []


class Client:
    """A Datastore client backed by SQLite (default) or PostgreSQL.

    Args:
        project: Project id. Default: ``$DATASTORE_DATASET``, ``$DATASTORE_PROJECT_ID``,
            ``$GOOGLE_CLOUD_PROJECT``, else ``"default"``.
        namespace: Default namespace for keys and queries made by this client.
        credentials, client_info, client_options, _http, _use_grpc: Accepted and ignored,
            so code written for google-cloud-datastore runs unchanged.
        database: A separate database inside the store (``None``/``""`` = default).
        url: Where to store data: ``sqlite:///file.db`` (default
            ``sqlite:///datastore_lite.db``, or ``$DATASTORE_LITE_URL``), ``sqlite://`` for
            memory, or ``postgresql://user@host/db``.
        index_yaml: Path of ``index.yaml`` (default ``$DATASTORE_LITE_INDEX_YAML``, else
            ``./index.yaml`` when present).
        profile: ``"legacy"`` (High-Replication Datastore rules, the default) or
            ``"firestore"`` (Firestore in Datastore mode).
        consistency: Global-query consistency: ``"strong"``, :class:`Eventual` or a text
            form (``"hrd"``, ``"lag=0.5"``, ``"probability=0.9"``). Default by profile:
            legacy ``Eventual(lag="hrd")``, firestore ``"strong"``.
        write_limit: A :class:`GroupWriteLimit` for entity groups (default off).
        seed: Seed of the consistency simulation (default random; see ``client.seed``).

    Example:
        >>> from datastore_lite import Client, Entity
        >>> client = Client(project="photo-app", url="sqlite://")
        >>> photo = Entity(client.key("User", "alice", "Photo"))
        >>> photo["caption"] = "sunset"
        >>> client.put(photo)
        >>> client.get(photo.key)["caption"]
        'sunset'
    """

    SCOPE = ("https://www.googleapis.com/auth/datastore",)

    def __init__(
        self,
        project: str | None = None,
        namespace: str | None = None,
        credentials: Any = None,
        client_info: Any = None,
        client_options: Any = None,
        database: str | None = None,
        _http: Any = None,
        _use_grpc: Any = None,
        *,
        url: str | None = None,
        index_yaml: str | os.PathLike[str] | None = None,
        profile: str | None = None,
        consistency: str | Policy | None = None,
        write_limit: GroupWriteLimit | str | None = None,
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.project = _determine_project(project)
        self.namespace = namespace
        self._database = database or None
        self.url = url or os.environ.get("DATASTORE_LITE_URL") or DEFAULT_URL
        self.profile = (
            get_profile(profile)
            if profile
            else _from_env("DATASTORE_LITE_PROFILE", get_profile) or get_profile("legacy")
        )
        self.consistency_policy: Policy = (
            parse_policy(consistency)
            if consistency
            else _from_env("DATASTORE_LITE_CONSISTENCY", parse_policy)
            or (Strong() if self.profile.default_consistency == "strong" else Eventual(lag="hrd"))
        )
        if write_limit is None:
            write_limit = _from_env("DATASTORE_LITE_WRITE_LIMIT", GroupWriteLimit.parse)
        if isinstance(write_limit, str):
            write_limit = GroupWriteLimit.parse(write_limit)
        self.write_limit = write_limit
        if seed is None:
            seed = _from_env("DATASTORE_LITE_SEED", _integer)
        self._batch_stack = _LocalStack()
        backend = open_backend(self.url)
        try:
            self._datastore_api = LocalDatastoreAPI(
                backend,
                profile=self.profile,
                policy=self.consistency_policy,
                write_limit=write_limit,
                seed=seed,
                clock=clock or time.time,
                sleep=sleep or time.sleep,
            )
            self.index_yaml = self._setup_indexes(index_yaml)
        except BaseException:
            backend.close()
            raise
        if not isinstance(self.consistency_policy, Strong):
            log.info("datastore_lite: consistency %r, seed %d", self.consistency_policy, self.seed)

    def _setup_indexes(self, index_yaml: str | os.PathLike[str] | None) -> str | None:
        from ._index_sync import sync_index_yaml

        path = index_yaml or os.environ.get("DATASTORE_LITE_INDEX_YAML")
        if path is None and os.path.exists("index.yaml"):
            path = "index.yaml"
        if path is None:
            return None
        self._datastore_api.index_yaml = os.fspath(path)
        if os.path.exists(path):
            sync_index_yaml(self._datastore_api, os.fspath(path))
        return os.fspath(path)

    # -- properties --------------------------------------------------------------------------

    @property
    def database(self) -> str | None:
        """The database inside the store (None = default)."""
        return self._database

    @property
    def seed(self) -> int:
        """The seed of the consistency simulation; pass it back as ``seed=`` to replay."""
        return self._datastore_api.seed

    @property
    def base_url(self) -> str:
        """The store's URL (the official client's attribute names the service endpoint)."""
        return self.url

    @property
    def consistency(self) -> ConsistencyControls:
        """Controls of the consistency simulation: ``pending()``, ``apply_all()``, ``freeze()``."""
        return ConsistencyControls(self)

    # -- batch stack -------------------------------------------------------------------------

    def _push_batch(self, batch: Batch) -> None:
        self._batch_stack.stack.append(batch)

    def _pop_batch(self) -> Batch:
        return self._batch_stack.stack.pop()

    @property
    def current_batch(self) -> Batch | None:
        """The innermost batch or transaction open in this thread, or None."""
        stack = self._batch_stack.stack
        return stack[-1] if stack else None

    @property
    def current_transaction(self) -> Transaction | None:
        """The innermost batch if it is a transaction, else None."""
        top = self.current_batch
        return top if isinstance(top, Transaction) else None

    # -- factories ---------------------------------------------------------------------------

    def key(self, *path_args: Any, **kwargs: Any) -> Key:
        """A key in this client's project, database and (default) namespace."""
        if "project" in kwargs:
            raise TypeError("Cannot pass project")
        kwargs["project"] = self.project
        if "database" in kwargs:
            raise TypeError("Cannot pass database")
        kwargs["database"] = self.database
        if "namespace" not in kwargs:
            kwargs["namespace"] = self.namespace
        return Key(*path_args, **kwargs)

    def entity(self, key: Key | None = None, exclude_from_indexes: Iterable[str] = ()) -> Entity:
        """A new entity (same as ``Entity(key, exclude_from_indexes)``)."""
        return Entity(key=key, exclude_from_indexes=exclude_from_indexes)

    def batch(self) -> Batch:
        """A new batch bound to this client."""
        return Batch(self)

    def transaction(self, **kwargs: Any) -> Transaction:
        """A new transaction (``read_only=``, ``read_time=``, ``begin_later=``)."""
        return Transaction(self, **kwargs)

    def query(self, **kwargs: Any) -> Query:
        """A query in this client's project and (default) namespace."""
        if "client" in kwargs:
            raise TypeError("Cannot pass client")
        if "project" in kwargs:
            raise TypeError("Cannot pass project")
        kwargs["project"] = self.project
        if "namespace" not in kwargs:
            kwargs["namespace"] = self.namespace
        return Query(self, **kwargs)

    def aggregation_query(self, query: Query, **kwargs: Any) -> AggregationQuery:
        """An aggregation (count / sum / avg) over ``query``."""
        return AggregationQuery(self, query, **kwargs)

    def gql(
        self, query_string: str, /, *positional_bindings: Any, **named_bindings: Any
    ) -> Query | AggregationQuery:
        """A query from GQL text (SEMANTICS.md §4.8; docs/gql.md), in this client's namespace.

        ``@1``, ``@2``, ... take ``positional_bindings`` and ``@name`` takes
        ``named_bindings``; each value given must be used. The result is a
        :class:`~datastore_lite.gql.GqlQuery` (a ``Query`` whose ``fetch()`` applies the
        text's LIMIT and OFFSET) or, for ``SELECT COUNT(*) ...`` / ``AGGREGATE ... OVER (...)``,
        a :class:`~datastore_lite.gql.GqlAggregationQuery`.

        Raises:
            InvalidArgument: The text is not GQL (a ``GqlSyntaxError`` naming the line and
                column), or a binding is missing, unused or not a valid value.

        Example:
            >>> client = Client(project="doc", url="sqlite://", consistency="strong")
            >>> query = client.gql("SELECT * FROM Photo WHERE likes > @n ORDER BY likes", n=10)
            >>> list(query.fetch())
            []
        """
        from .gql import build

        return build(self, query_string, positional_bindings, named_bindings)

    # -- reads -------------------------------------------------------------------------------

    def get(
        self,
        key: Key,
        missing: list[Entity] | None = None,
        deferred: list[Key] | None = None,
        transaction: Transaction | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> Entity | None:
        """The entity stored under ``key``, or None."""
        plain = (
            missing is None
            and deferred is None
            and transaction is None
            and read_time is None
            and type(key) is Key
            and key._project == self.project
        )
        stack = self._batch_stack.stack
        if plain and stack and not eventual and type(stack[-1]) is Transaction:
            # the read of a read-modify-write transaction, without get_multi's lists
            path = key._flat_path
            check_ids(path)
            ref = KeyRef(key._project, key._database or "", key._namespace or "", path)
            body = self._datastore_api.get_in_transaction(ref, stack[-1]._read_id())
            return None if body is None else body_to_entity(key, body)
        if plain and not stack:
            # the common case, without get_multi's list handling (same checks, same result;
            # get_body checks the ids)
            body = self._datastore_api.get_body(
                key._project, key._database or "", key._namespace or "", key._flat_path, eventual
            )
            if body is None:
                return None
            if key._namespace == "" or key._database == "" or key._parent is not None:
                # the official client returns a key rebuilt from the response
                key = Key._from_trusted(
                    key._flat_path, key._project, key._namespace or None, key._database or None
                )
            return body_to_entity(key, body)
        entities = self.get_multi(
            [key],
            missing=missing,
            deferred=deferred,
            transaction=transaction,
            eventual=eventual,
            retry=retry,
            timeout=timeout,
            read_time=read_time,
        )
        return entities[0] if entities else None

    def get_multi(
        self,
        keys: Sequence[Key],
        missing: list[Entity] | None = None,
        deferred: list[Key] | None = None,
        transaction: Transaction | None = None,
        eventual: bool = False,
        retry: Any = None,
        timeout: Any = None,
        read_time: Any = None,
    ) -> list[Entity]:
        """The entities stored under ``keys`` (missing ones left out).

        Args:
            missing: An empty list to receive an ``Entity`` (key only) per missing key.
            deferred: An empty list; datastore_lite never defers keys, so it stays empty.
            transaction: Read inside this transaction (default: the current one).
            eventual: Read without rolling entity groups forward (may be stale).

        Raises:
            ValueError: Keys from another project; non-empty ``missing``/``deferred``; both
                ``eventual`` and a transaction.
        """
        if not keys:
            return []
        for current_id in {key.project for key in keys}:
            if current_id != self.project:
                raise ValueError("Keys do not match project")
        if missing is not None and missing != []:
            raise ValueError("missing must be None or an empty list")
        if deferred is not None and deferred != []:
            raise ValueError("deferred must be None or an empty list")
        if transaction is None:
            transaction = self.current_transaction
        txn_id = None
        if transaction is not None:
            if eventual or read_time is not None:
                raise ValueError("At most one of eventual, transaction, or read_time is allowed.")
            txn_id = transaction._read_id()
        elif eventual and read_time is not None:
            raise ValueError("At most one of eventual, transaction, or read_time is allowed.")
        for key in keys:
            if not isinstance(key, Key):
                raise ValueError(f"get_multi expects Key objects, got {type(key).__name__}")
        if txn_id is None:
            # outside a transaction: bodies by key, one statement per partition
            bodies = self._datastore_api.get_bodies(
                [
                    KeyRef(k._project, k._database or "", k._namespace or "", k._flat_path)
                    for k in keys
                ],
                eventual,
            )
            entities = []
            trusted = Key._from_trusted
            for k, body in zip(keys, bodies):
                key = trusted(k._flat_path, k._project, k._namespace or None, k._database or None)
                if body is not None:
                    entities.append(body_to_entity(key, body))
                elif missing is not None:
                    missing.append(Entity(key))
            return entities
        refs = [key_to_ref(k) for k in keys]
        result = self._datastore_api.lookup(refs, transaction=txn_id, eventual=eventual)
        found = result.found
        entities = [
            body_to_entity(keys[0] if len(keys) == 1 else ref_to_key(ref), body)
            for ref, body, _version in found
        ]
        if missing is not None:
            missing.extend(Entity(ref_to_key(ref)) for ref in result.missing)
        if deferred is not None:
            deferred.extend(ref_to_key(ref) for ref in result.deferred)
        return entities

    # -- writes ------------------------------------------------------------------------------

    def put(self, entity: Entity, retry: Any = None, timeout: Any = None) -> None:
        """Save ``entity``; a partial key is completed in place."""
        stack = self._batch_stack.stack
        if stack and isinstance(entity, Entity):
            stack[-1].put(entity)  # queued in the open batch or transaction (put_multi's path)
            return
        self.put_multi([entity], retry=retry, timeout=timeout)

    def put_multi(self, entities: Sequence[Entity], retry: Any = None, timeout: Any = None) -> None:
        """Save several entities in one commit (or queue them in the current batch)."""
        if isinstance(entities, Entity):
            raise ValueError("Pass a sequence of entities")
        if not entities:
            return
        current = self.current_batch
        in_batch = current is not None
        if current is None:
            current = self.batch()
            current.begin()
        for entity in entities:
            current.put(entity)
        if not in_batch:
            current.commit(retry=retry, timeout=timeout)

    def delete(self, key: Key | Entity, retry: Any = None, timeout: Any = None) -> None:
        """Delete the entity under ``key`` (no error if it does not exist)."""
        self.delete_multi([key], retry=retry, timeout=timeout)

    def delete_multi(
        self, keys: Sequence[Key | Entity], retry: Any = None, timeout: Any = None
    ) -> None:
        """Delete several entities in one commit (or queue them in the current batch)."""
        if not keys:
            return
        current = self.current_batch
        in_batch = current is not None
        if current is None:
            current = self.batch()
            current.begin()
        for key in keys:
            if isinstance(key, Entity):
                if key.key is None:
                    raise ValueError("Entity must have a key")
                key = key.key
            current.delete(key)
        if not in_batch:
            current.commit(retry=retry, timeout=timeout)

    # -- ids ---------------------------------------------------------------------------------

    def allocate_ids(
        self, incomplete_key: Key, num_ids: int, retry: Any = None, timeout: Any = None
    ) -> list[Key]:
        """Allocate ``num_ids`` scattered ids under ``incomplete_key``'s parent and kind."""
        if not incomplete_key.is_partial:
            raise ValueError(("Key is not partial.", incomplete_key))
        refs = self._datastore_api.allocate_ids([key_to_ref(incomplete_key)] * num_ids)
        return [incomplete_key.completed_key(ref.path[-1]) for ref in refs]

    def reserve_ids_sequential(
        self, complete_key: Key, num_ids: int, retry: Any = None, timeout: Any = None
    ) -> None:
        """Reserve ``complete_key``'s id and the ``num_ids - 1`` ids after it."""
        if complete_key.is_partial:
            raise ValueError(("Key is not Complete.", complete_key))
        if complete_key.id is None:
            raise ValueError(("Key must use numeric id.", complete_key))
        if not isinstance(num_ids, int):
            raise ValueError(("num_ids is not a valid integer.", num_ids))
        base = key_to_ref(complete_key)
        start = complete_key.id
        refs = [
            type(base)(base.project, base.database, base.namespace, base.path[:-1] + (i,))
            for i in range(start, start + num_ids)
        ]
        self._datastore_api.reserve_ids(refs)

    def reserve_ids(
        self, complete_key: Key, num_ids: int, retry: Any = None, timeout: Any = None
    ) -> None:
        """Deprecated alias of :meth:`reserve_ids_sequential`."""
        warnings.warn(_RESERVE_IDS_DEPRECATED_MESSAGE, DeprecationWarning, stacklevel=2)
        self.reserve_ids_sequential(complete_key, num_ids, retry=retry, timeout=timeout)

    def reserve_ids_multi(
        self, complete_keys: Sequence[Key], retry: Any = None, timeout: Any = None
    ) -> None:
        """Reserve the ids of several complete keys."""
        for complete_key in complete_keys:
            if complete_key.is_partial:
                raise ValueError(("Key is not Complete.", complete_key))
        self._datastore_api.reserve_ids([key_to_ref(k) for k in complete_keys])

    # -- extras ------------------------------------------------------------------------------

    def run_in_transaction(
        self,
        fn: Callable[..., T],
        *args: Any,
        retries: int = 3,
        read_only: bool = False,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` in a transaction, retrying on contention.

        ``fn`` is re-run from scratch after an :class:`~datastore_lite.exceptions.Aborted`
        commit, up to ``retries`` more times, with exponential backoff and jitter
        (10 ms doubling to at most 5 s; the App Engine SDK started at 100 ms, which left
        contended groups idle). Returns ``fn``'s result.

        Raises:
            Aborted: Still contended after the last retry.
        """
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries!r}")
        delay = 0.01
        attempt = 0
        sleep = self._datastore_api.sleep
        while True:
            try:
                with self.transaction(read_only=read_only):
                    return fn(*args, **kwargs)
            except exceptions.Aborted:
                if attempt >= retries:
                    raise
                attempt += 1
                sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        """Close the database connections."""
        self._datastore_api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<datastore_lite.Client project={self.project!r} url={self.url!r}>"
