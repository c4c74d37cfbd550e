"""The consistency model of DESIGN.md §7 checked against a reference model (stateful).

A Hypothesis ``RuleBasedStateMachine`` writes to three entity groups (root and child keys,
single puts and deletes, batches over several groups, transactions that read, write or
roll back), reads them strongly (get, get_multi, ancestor queries) and eventually (global
kind scans, an equality filter, a kindless scan, a count, ``eventual=True`` gets and
ancestor queries), advances a fake clock, freezes and thaws, looks at ``pending()`` and
calls ``apply_all()``. The model keeps each group's commit history and the invariants are:

* strong reads always equal the model's latest state, and roll their group forward;
* every global query result equals that query evaluated over SOME prefix of each group's
  commit history, each group independently (SEMANTICS.md §5.1);
* the prefixes never shrink: a write once seen by a global read stays seen (monotonic);
* after ``apply_all()`` global results equal strong results.

Because a write to a group first rolls the group forward (SEMANTICS.md §5.1), at most the
latest commit of a group is pending, and the model knows a lower bound (``floor``) of the
prefix global reads must show. Where the prefix is certain it is ``known`` and required
exactly: under probability 0 and a fixed lag on the fake clock always; under the random
policies after a write, a strong read, ``pending()``, ``apply_all()`` or a read that could
only be one prefix - and then it stays put while nothing can apply it (a frozen client, an
``eventual=True`` ancestor query, which does not groom).

Each example draws its policy (``probability=0.5`` and ``hrd`` with a fixed seed,
``probability=0.0``, ``lag=1``) and runs in a fresh namespace, on every store.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from datastore_lite import Client, Entity, Eventual, Key
from datastore_lite.query import PropertyFilter
from datastore_lite.testing import FakeClock

Path = tuple[Any, ...]
State = dict[Path, int]
Rows = frozenset[tuple[Path, Any]]
Query = Callable[[State], Rows]

#: three entity groups; each has its root entity and two children of kind "E"
GROUPS: tuple[Path, ...] = (("G", 1), ("G", 2), ("E", 3))
PATHS: tuple[Path, ...] = tuple(
    path for g in GROUPS for path in (g, (*g, "E", "a"), (*g, "E", "b"))
)
LAG = 1.0
SEED = 20261123
HRD_DELAYS = {0.1, 0.3, 2.0, 240.0}
POLICIES = {
    "probability=0.5": Eventual(probability=0.5),
    "probability=0.0": Eventual(probability=0.0),
    "lag=1": Eventual(lag=LAG),
    "hrd": Eventual(lag="hrd"),
}

paths = st.sampled_from(PATHS)
groups = st.sampled_from(GROUPS)
values = st.integers(0, 2)
writes = st.dictionaries(paths, st.one_of(st.none(), values), min_size=1, max_size=4)


def group_of(path: Path) -> Path:
    return path[:2]


def of_kind(kind: str | None, value: int | None = None) -> Query:
    """The model of a query: entities of ``kind`` (any if None), optionally ``v = value``."""

    def run(state: State) -> Rows:
        return frozenset(
            (path, v)
            for path, v in state.items()
            if (kind is None or path[-2] == kind) and (value is None or v == value)
        )

    return run


@dataclass
class GroupModel:
    """One entity group: its states after each commit and what global reads must see."""

    states: list[State] = field(default_factory=lambda: [{}])
    times: list[float] = field(default_factory=lambda: [0.0])
    #: (keys put, keys deleted) of each commit
    changes: list[tuple[frozenset[Path], frozenset[Path]]] = field(
        default_factory=lambda: [(frozenset(), frozenset())]
    )
    #: global reads see at least ``states[floor]``
    floor: int = 0
    #: the prefix global reads see (the group's applied version), when the model knows it
    known: int | None = 0

    @property
    def latest(self) -> int:
        return len(self.states) - 1


class ClientPool:
    """One client per policy on the store under test, reused by every example.

    Each example gets a fresh namespace and the same seed again (so examples replay), and
    leaves nothing pending behind (``teardown`` applies everything).
    """

    def __init__(self, url: str, policy: str | None = None) -> None:
        self.url = url
        #: run every example under this policy (default: each example draws one)
        self.policy = policy
        self.clock = FakeClock()
        self.clients: dict[str, Client] = {}
        self.namespaces = itertools.count()

    def client(self, policy: str) -> Client:
        client = self.clients.get(policy)
        if client is None:
            client = self.clients[policy] = Client(
                project="model",
                url=self.url,
                consistency=POLICIES[policy],
                seed=SEED,
                index_yaml=os.devnull,
                clock=self.clock.time,
                sleep=self.clock.sleep,
            )
        client.namespace = f"m{next(self.namespaces)}"
        # every example starts the simulation's random sequence afresh
        client._datastore_api.consistency.rng.seed(SEED)
        client.consistency.thaw()
        return client

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


class ConsistencyModel(RuleBasedStateMachine):
    """Rules drive the client; each read is checked against the group models."""

    def __init__(self, pool: ClientPool) -> None:
        super().__init__()
        self.pool = pool
        self.clock = pool.clock
        self.client: Client | None = None
        self.groups = {g: GroupModel() for g in GROUPS}
        self.policy = ""
        self.frozen = False

    @initialize(policy=st.sampled_from(sorted(POLICIES)))
    def open_client(self, policy: str) -> None:
        self.policy = self.pool.policy or policy
        self.client = self.pool.client(self.policy)

    def teardown(self) -> None:
        if self.client is not None:
            self.client.consistency.thaw()
            self.client.consistency.apply_all()

    # -- helpers ------------------------------------------------------------------------------

    @property
    def c(self) -> Client:
        assert self.client is not None
        return self.client

    def key(self, path: Path) -> Key:
        return self.c.key(*path)

    def entity(self, path: Path, value: int) -> Entity:
        entity = Entity(self.key(path))
        entity["v"] = value
        return entity

    def rows(self, entities: list[Entity]) -> Rows:
        out = [(e.key.flat_path, e.get("v")) for e in entities if e.key is not None]
        assert len(out) == len(set(out)), f"duplicate results: {out}"
        return frozenset(out)

    def commit(self, changes: dict[Path, int | None]) -> None:
        """The model of one commit: one new state per group written."""
        by_group: dict[Path, dict[Path, int | None]] = {}
        for path, value in changes.items():
            by_group.setdefault(group_of(path), {})[path] = value
        for g, group_changes in by_group.items():
            model = self.groups[g]
            # SEMANTICS.md §5.1: a write rolls its group forward, then waits (every policy
            # drawn here defers every commit)
            model.floor = model.known = model.latest
            state = dict(model.states[-1])
            for path, value in group_changes.items():
                if value is None:
                    state.pop(path, None)
                else:
                    state[path] = value
            model.states.append(state)
            model.times.append(self.clock.now)
            puts = frozenset(p for p, v in group_changes.items() if v is not None)
            deletes = frozenset(p for p, v in group_changes.items() if v is None)
            model.changes.append((puts, deletes))

    def strong(self, g: Path, query: Query, actual: Rows, what: str) -> None:
        """A strong read of group ``g``: the latest state; the group is rolled forward."""
        model = self.groups[g]
        expected = query(model.states[-1])
        assert actual == expected, f"strong {what} of {g}: {sorted(actual)} != {sorted(expected)}"
        model.floor = model.known = model.latest

    def expected_prefix(self, g: Path, grooms: bool) -> int | None:
        """The prefix a read of ``g`` must show when it is certain, else None.

        ``grooms``: the read first applies the group's due pending write (global queries and
        eventual gets do, unless the client is frozen; eventual ancestor queries never do).
        """
        model = self.groups[g]
        if self.frozen or not grooms or model.known == model.latest:
            return model.known
        if self.policy == "probability=0.0":
            return model.known
        if self.policy == "lag=1":
            due = model.times[model.latest] + LAG <= self.clock.now
            return model.latest if due else model.known
        return None

    def eventual(self, g: Path, query: Query, actual: Rows, grooms: bool, what: str) -> None:
        """An eventual read of group ``g``: some prefix, never shorter than before."""
        model = self.groups[g]
        matching = [p for p, state in enumerate(model.states) if query(state) == actual]
        history = [sorted(query(state)) for state in model.states]
        assert matching, f"{what}: {sorted(actual)} of {g} is no prefix of {history}"
        allowed = [p for p in matching if p >= model.floor]
        assert allowed, (
            f"{what}: {sorted(actual)} of {g} went back to prefix {matching} after "
            f"{model.floor} was seen (not monotonic); history {history}"
        )
        want = self.expected_prefix(g, grooms)
        if want is not None:
            assert want in allowed, (
                f"{what} of {g} under {self.policy} (frozen={self.frozen}) should show "
                f"prefix {want} {history[want]}, got {sorted(actual)}"
            )
            model.floor = model.known = want
        else:
            model.floor = min(allowed)
            model.known = allowed[0] if len(allowed) == 1 else None

    def global_read(self, query: Query, actual: Rows, what: str) -> None:
        """A global query: every group, each at some prefix (all of them are groomed)."""
        claimed: set[tuple[Path, Any]] = set()
        for g in GROUPS:
            part = frozenset(row for row in actual if group_of(row[0]) == g)
            claimed |= part
            self.eventual(g, query, part, grooms=True, what=what)
        assert claimed == actual, f"{what}: rows outside the model: {sorted(actual - claimed)}"

    # -- writes -------------------------------------------------------------------------------

    @rule(path=paths, value=values)
    def put(self, path: Path, value: int) -> None:
        self.c.put(self.entity(path, value))
        self.commit({path: value})

    @rule(path=paths)
    def delete(self, path: Path) -> None:
        self.c.delete(self.key(path))
        self.commit({path: None})

    @rule(changes=writes)
    def batch(self, changes: dict[Path, int | None]) -> None:
        with self.c.batch():
            for path, value in changes.items():
                if value is None:
                    self.c.delete(self.key(path))
                else:
                    self.c.put(self.entity(path, value))
        self.commit(changes)

    @rule(
        reads=st.lists(paths, max_size=3, unique=True),
        ancestor=st.none() | groups,
        changes=st.dictionaries(paths, st.one_of(st.none(), values), max_size=3),
        rollback=st.booleans(),
    )
    def transaction(
        self,
        reads: list[Path],
        ancestor: Path | None,
        changes: dict[Path, int | None],
        rollback: bool,
    ) -> None:
        class Rollback(Exception):
            pass

        try:
            with self.c.transaction():
                # reads in a transaction are strong: they roll their groups forward
                if reads:
                    got = self.rows(self.c.get_multi([self.key(p) for p in reads]))
                    for g in {group_of(p) for p in reads}:
                        mine = [p for p in reads if group_of(p) == g]
                        self.strong(g, _keys(mine), _in(got, g), "transactional get")
                if ancestor is not None:
                    query = self.c.query(kind="E", ancestor=self.key(ancestor))
                    got = self.rows(list(query.fetch()))
                    self.strong(ancestor, of_kind("E"), got, "transactional ancestor query")
                for path, value in changes.items():
                    if value is None:
                        self.c.delete(self.key(path))
                    else:
                        self.c.put(self.entity(path, value))
                if rollback:
                    raise Rollback
        except Rollback:
            return
        if changes:
            self.commit(changes)

    # -- strong reads -------------------------------------------------------------------------

    @rule(
        how=st.sampled_from(["get", "ancestor query"]),
        chosen=st.lists(paths, min_size=1, max_size=3, unique=True),
        g=groups,
        kindless=st.booleans(),
        value=st.none() | values,
    )
    def strong_read(
        self, how: str, chosen: list[Path], g: Path, kindless: bool, value: int | None
    ) -> None:
        if how == "get":
            self.get(chosen)
        else:
            self.ancestor_query(g, kindless, value)

    def get(self, chosen: list[Path]) -> None:
        if len(chosen) == 1:
            found = self.c.get(self.key(chosen[0]))
            got = self.rows([found] if found is not None else [])
        else:
            got = self.rows(self.c.get_multi([self.key(p) for p in chosen]))
        for g in {group_of(p) for p in chosen}:
            mine = [p for p in chosen if group_of(p) == g]
            self.strong(g, _keys(mine), _in(got, g), "get")

    def ancestor_query(self, g: Path, kindless: bool, value: int | None) -> None:
        kind = None if kindless else "E"
        value = None if kindless else value  # kindless queries take no property filters
        filters = [] if value is None else [PropertyFilter("v", "=", value)]
        query = self.c.query(kind=kind, ancestor=self.key(g), filters=filters)
        self.strong(g, of_kind(kind, value), self.rows(list(query.fetch())), "ancestor query")

    # -- eventual reads -----------------------------------------------------------------------

    @rule(
        how=st.sampled_from(["global query", "count", "eventual get", "eventual ancestor query"]),
        kind=st.sampled_from(["E", "G", None]),
        value=st.none() | values,
        chosen=st.lists(paths, min_size=1, max_size=3, unique=True),
        g=groups,
    )
    def eventual_read(
        self, how: str, kind: str | None, value: int | None, chosen: list[Path], g: Path
    ) -> None:
        if how == "global query":
            self.global_query(kind, value)
        elif how == "count":
            self.global_count(kind or "E")
        elif how == "eventual get":
            self.eventual_get(chosen)
        else:
            self.eventual_ancestor_query(g)

    def global_query(self, kind: str | None, value: int | None) -> None:
        value = None if kind is None else value
        filters = [] if value is None else [PropertyFilter("v", "=", value)]
        got = self.rows(list(self.c.query(kind=kind, filters=filters).fetch()))
        self.global_read(of_kind(kind, value), got, f"global query kind={kind} v={value}")

    def global_count(self, kind: str) -> None:
        query = self.c.aggregation_query(self.c.query(kind=kind)).count()
        [[result]] = list(query.fetch())
        query_model = of_kind(kind)
        wanted = [self.expected_prefix(g, grooms=True) for g in GROUPS]
        certain = [w for w in wanted if w is not None]
        if len(certain) == len(GROUPS):
            exact = sum(len(query_model(self.groups[g].states[w])) for g, w in zip(GROUPS, certain))
            assert result.value == exact, f"count {result.value} != {exact}"
            for g, w in zip(GROUPS, certain):
                self.groups[g].floor = self.groups[g].known = w
            return
        choices = [
            {len(query_model(m.states[p])) for p in range(m.floor, m.latest + 1)}
            for m in self.groups.values()
        ]
        possible = {sum(combo) for combo in itertools.product(*choices)}
        assert result.value in possible, f"count {result.value} not in {sorted(possible)}"
        for g, prefix in zip(GROUPS, wanted):
            model = self.groups[g]
            # the count groomed every group: where the outcome is not certain, forget it
            model.known = prefix
            if prefix is not None:
                model.floor = prefix

    def eventual_get(self, chosen: list[Path]) -> None:
        if len(chosen) == 1:
            found = self.c.get(self.key(chosen[0]), eventual=True)
            got = self.rows([found] if found is not None else [])
        else:
            got = self.rows(self.c.get_multi([self.key(p) for p in chosen], eventual=True))
        for g in {group_of(p) for p in chosen}:
            mine = [p for p in chosen if group_of(p) == g]
            # an eventual get grooms its group (applies it if due), then reads
            self.eventual(g, _keys(mine), _in(got, g), grooms=True, what="eventual get")

    def eventual_ancestor_query(self, g: Path) -> None:
        query = self.c.query(kind="E", ancestor=self.key(g))
        got = self.rows(list(query.fetch(eventual=True)))
        # no roll-forward and no grooming: the group as last applied
        self.eventual(g, of_kind("E"), got, grooms=False, what="eventual ancestor query")

    # -- time and controls --------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.05, 0.25, 0.5, 1.0, 3.0, 250.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(control=st.sampled_from(["freeze", "thaw", "pending", "apply_all"]))
    def control(self, control: str) -> None:
        if control == "freeze":
            self.c.consistency.freeze()
            self.frozen = True
        elif control == "thaw":
            self.c.consistency.thaw()
            self.frozen = False
        elif control == "pending":
            self.pending()
        else:
            self.apply_all()

    def pending(self) -> None:
        """``pending()`` shows exactly the groups whose latest commit is not applied."""
        namespace = self.c.namespace
        listed: set[Path] = set()
        for write in self.c.consistency.pending():
            if write.group.namespace != namespace:
                continue
            g = write.group.flat_path
            model = self.groups[g]
            assert g not in listed, f"two pending writes for {g}"
            listed.add(g)
            assert write.version == model.latest, (write, model.latest)
            assert model.floor < model.latest, f"{g} pending, but a global read saw it"
            assert model.known in (None, model.latest - 1), f"{g} pending, but applied"
            model.floor = model.known = model.latest - 1
            puts, deletes = model.changes[model.latest]
            assert {k.flat_path for k in write.puts} == puts
            assert {k.flat_path for k in write.deletes} == deletes
            offset = round(write.due - model.times[model.latest], 6)
            if self.policy == "lag=1":
                assert offset == LAG
            elif self.policy == "hrd":
                assert offset in HRD_DELAYS
            else:
                assert offset == 0.0  # probability: due at once, applied by chance
        for g, model in self.groups.items():
            if g not in listed:
                assert model.known in (None, model.latest), f"{g}: its write was applied unseen"
                model.floor = model.known = model.latest  # nothing pending: applied

    def apply_all(self) -> None:
        moved = self.c.consistency.apply_all()
        models = self.groups.values()
        surely = sum(m.known is not None and m.known < m.latest for m in models)
        maybe = sum(m.known is None and m.floor < m.latest for m in models)
        assert surely <= moved <= surely + maybe, (moved, surely, maybe)
        for model in models:
            model.floor = model.known = model.latest
        # after apply_all() global results equal strong results
        got = self.rows(list(self.c.query().fetch()))
        latest = frozenset(row for m in self.groups.values() for row in m.states[-1].items())
        assert got == latest


def _keys(chosen: list[Path]) -> Query:
    """The model of a lookup of ``chosen`` keys."""

    def run(state: State) -> Rows:
        return frozenset((p, state[p]) for p in chosen if p in state)

    return run


def _in(rows: Rows, g: Path) -> Rows:
    return frozenset(row for row in rows if group_of(row[0]) == g)


def run_model(pool: ClientPool, examples: int) -> None:
    try:
        run_state_machine_as_test(
            lambda: ConsistencyModel(pool),  # type: ignore[arg-type]
            settings=settings(
                max_examples=examples,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        pool.close()


def _default_examples() -> int:
    """The loaded profile's ``max_examples`` (60 by default, 500 with ``thorough``)."""
    default = settings.default
    return default.max_examples if default is not None else 100


# modest by default (the suite must stay fast); HYPOTHESIS_PROFILE=thorough scales both up


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_consistency_model_per_policy(policy: str) -> None:
    """Each policy gets its own examples, on in-memory SQLite (the cheapest store)."""
    run_model(ClientPool("sqlite://", policy), max(10, _default_examples() // 2))


def test_consistency_model(backend_url: str) -> None:
    """Every store; each example draws its policy."""
    run_model(ClientPool(backend_url), max(8, _default_examples() // 4))
