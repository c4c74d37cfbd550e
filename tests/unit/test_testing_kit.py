"""The testing kit ``datastore_lite.testing`` (docs/testing.md).

Its parts: ``FakeClock``, ``eventually()``, ``temporary_client()``, the Hypothesis strategies
and the pytest plugin (``datastore_client`` / ``datastore_clock`` fixtures and the
``datastore_consistency`` / ``datastore_seed`` / ``datastore_options`` markers). The plugin is
installed through the ``pytest11`` entry point, so this very suite uses its fixtures.

The last section is the worked example of docs/testing.md: a user's own property test of
their app's consistency - a photo app whose user stream (an ancestor query) always shows
the photo just posted, and whose global "latest photos" page eventually does.
"""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import datastore_lite.testing
from datastore_lite import Client, Entity, Eventual, Key, Strong
from datastore_lite.exceptions import FailedPrecondition
from datastore_lite.testing import FakeClock, eventually, plugin, temporary_client
from datastore_lite.testing import _helpers as helpers
from datastore_lite.testing import strategies as dls

pytest_plugins = ["pytester"]

ENV = ("DATASTORE_LITE_CONSISTENCY", "DATASTORE_LITE_SEED", "DATASTORE_LITE_PROFILE")
FEW = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


# -- the package ----------------------------------------------------------------------------------


def test_the_kit_imports_neither_pytest_nor_hypothesis() -> None:
    code = (
        "import sys, datastore_lite, datastore_lite.testing as t\n"
        "assert 'hypothesis' not in sys.modules and 'pytest' not in sys.modules\n"
        "assert t.FakeClock and t.eventually and t.temporary_client\n"
        "t.strategies\n"  # the attribute imports the strategies (and Hypothesis) on demand
        "assert 'hypothesis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_strategies_without_hypothesis_say_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['hypothesis'] = None\n"
        "try:\n"
        "    import datastore_lite.testing.strategies\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install hypothesis" in out.stdout


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        datastore_lite.testing.nope  # noqa: B018


@pytest.mark.parametrize("module", [helpers, dls], ids=["_helpers", "strategies"])
def test_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# -- FakeClock ------------------------------------------------------------------------------------


def test_fake_clock() -> None:
    clock = FakeClock(start=100.0)
    assert clock.time() == 100.0
    clock.sleep(2.5)
    clock.advance(0.5)
    clock.sleep(-1)  # a negative sleep returns at once, as time.sleep would not
    assert clock.time() == 103.0 and clock.elapsed == 3.0
    assert clock.sleeps == [2.5, -1]
    assert repr(clock) == "FakeClock(elapsed=3)"
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


# -- eventually() ---------------------------------------------------------------------------------


class Attempts:
    """``fn`` for eventually(): fails until the ``succeed_at``-th call."""

    def __init__(self, succeed_at: int) -> None:
        self.calls = 0
        self.succeed_at = succeed_at

    def __call__(self) -> int:
        self.calls += 1
        assert self.calls >= self.succeed_at, f"call {self.calls}"
        return self.calls


def test_eventually_retries_until_the_assertion_holds() -> None:
    clock = FakeClock()
    fn = Attempts(4)
    assert eventually(fn, timeout=10, interval=1, clock=clock.time, sleep=clock.sleep) == 4
    assert clock.sleeps == [1, 1, 1]


def test_eventually_gives_up_at_the_timeout_with_the_last_failure() -> None:
    clock = FakeClock()
    fn = Attempts(100)
    with pytest.raises(AssertionError) as raised:
        eventually(fn, timeout=3, interval=1, clock=clock.time, sleep=clock.sleep)
    assert "still failing after 4 attempts over 3 s (timeout 3 s): call 4" in str(raised.value)
    assert isinstance(raised.value.__cause__, AssertionError)
    assert fn.calls == 4 and clock.elapsed == 3


def test_eventually_ends_even_if_the_clock_never_moves() -> None:
    fn = Attempts(100)
    with pytest.raises(AssertionError, match="after 6 attempts"):
        eventually(fn, timeout=1, interval=0.2, clock=lambda: 0.0, sleep=lambda s: None)


def test_eventually_lets_other_exceptions_through_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        eventually(broken, timeout=5, interval=0)
    assert calls == [1]


def test_eventually_with_a_predicate() -> None:
    values = iter([0, 1, 2, 3])
    assert eventually(lambda: next(values), predicate=lambda v: v >= 2, interval=0) == 2
    with pytest.raises(AssertionError, match="predicate not satisfied by 0"):
        eventually(lambda: 0, predicate=bool, timeout=0, interval=0)


def test_eventually_validates_its_arguments() -> None:
    with pytest.raises(ValueError):
        eventually(lambda: None, timeout=-1)


def test_eventually_real_clock_defaults() -> None:
    fn = Attempts(2)
    assert eventually(fn, timeout=2, interval=0.001) == 2


def photos(client: Client) -> list[Any]:
    return sorted(e.key.id for e in client.query(kind="Photo").fetch() if e.key is not None)


def test_eventually_on_a_fake_clock_client_waits_out_a_lag_in_simulated_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    with temporary_client(consistency=Eventual(lag=30.0), clock=clock) as client:
        monkeypatch.setattr(
            type(client.consistency), "apply_all", lambda self: pytest.fail("apply_all called")
        )
        client.put(Entity(client.key("Photo", 1)))

        def visible() -> None:
            assert photos(client) == [1]

        eventually(visible, client=client, timeout=60, interval=1.0)
        assert clock.elapsed == 30.0  # the clock moved by exactly the lag, in no real time


def test_eventually_under_probability_zero_times_out() -> None:
    clock = FakeClock()
    with temporary_client(consistency="probability=0.0", clock=clock) as client:
        client.put(Entity(client.key("Photo", 1)))

        def visible() -> None:
            assert photos(client) == [1]

        with pytest.raises(AssertionError, match="after 11 attempts"):
            eventually(visible, client=client, timeout=10, interval=1.0)
        # only a strong read makes it visible
        client.get(client.key("Photo", 1))
        assert photos(client) == [1]


def test_eventually_under_the_hrd_model_covers_its_worst_case() -> None:
    clock = FakeClock()
    with temporary_client(consistency="hrd", seed=1, clock=clock) as client:
        client.put_multi([Entity(client.key("Photo", n)) for n in range(1, 301)])

        def all_visible() -> None:
            assert len(photos(client)) == 300

        eventually(all_visible, client=client, timeout=300, interval=1.0)
        assert 0 < clock.elapsed <= 240  # seed 1: some of the 300 writes take the 240 s tail


# -- temporary_client() ---------------------------------------------------------------------------


def test_temporary_client_is_a_fresh_sqlite_file_removed_afterwards() -> None:
    with temporary_client(consistency="strong", seed=3) as client:
        path = Path(client.url.removeprefix("sqlite:///"))
        assert path.exists() and client.seed == 3 and client.project == "test"
        assert client.consistency.policy == Strong()
        client.put(Entity(client.key("Photo", 1)))
    assert not path.parent.exists()


def test_temporary_client_options() -> None:
    with temporary_client(
        url="sqlite://", project="p", profile="firestore", namespace="ns"
    ) as client:
        assert client.url == "sqlite://" and client.project == "p" and client.namespace == "ns"
        assert client.consistency.policy == Strong()  # the firestore profile's default


# -- the pytest plugin ----------------------------------------------------------------------------


def test_datastore_client_defaults(
    datastore_client: Client, request: pytest.FixtureRequest
) -> None:
    assert datastore_client.consistency.policy == Eventual(lag="hrd")  # the legacy default
    assert datastore_client.seed == zlib.crc32(request.node.nodeid.encode())
    assert datastore_client.project == "test"
    assert datastore_client.url.startswith("sqlite:///")
    assert str(request.getfixturevalue("tmp_path")) in datastore_client.url


@pytest.mark.datastore_consistency("probability=0.0")
@pytest.mark.datastore_seed(7)
def test_datastore_client_markers(datastore_client: Client) -> None:
    assert datastore_client.consistency.policy == Eventual(probability=0.0)
    assert datastore_client.seed == 7
    datastore_client.put(Entity(datastore_client.key("Photo", 1)))
    assert photos(datastore_client) == []


@pytest.mark.datastore_options(profile="firestore", namespace="tenant")
def test_datastore_client_options_marker(datastore_client: Client) -> None:
    assert datastore_client.consistency.policy == Strong()
    assert datastore_client.namespace == "tenant"


@pytest.mark.datastore_consistency(Eventual(lag=5.0))
def test_datastore_client_on_the_fake_clock(
    datastore_client: Client, datastore_clock: FakeClock
) -> None:
    datastore_client.put(Entity(datastore_client.key("Photo", 1)))
    datastore_clock.advance(4.9)
    assert photos(datastore_client) == []
    datastore_clock.advance(0.1)
    assert photos(datastore_client) == [1]


@pytest.mark.parametrize(
    "datastore_client",
    ["strong", "probability=0.0", {"consistency": "lag=2", "seed": 11}],
    indirect=True,
)
def test_datastore_client_parametrised(datastore_client: Client) -> None:
    policy = datastore_client.consistency.policy
    assert policy in (Strong(), Eventual(probability=0.0), Eventual(lag=2.0))
    if policy == Eventual(lag=2.0):
        assert datastore_client.seed == 11


@pytest.mark.datastore_consistency("probability=0.0")
@pytest.mark.parametrize("datastore_client", ["strong"], indirect=True)
def test_parametrisation_wins_over_markers(datastore_client: Client) -> None:
    assert datastore_client.consistency.policy == Strong()


def test_datastore_client_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("DATASTORE_LITE_CONSISTENCY", "lag=0.5")
    monkeypatch.setenv("DATASTORE_LITE_SEED", "42")
    client: Client = request.getfixturevalue("datastore_client")
    assert client.consistency.policy == Eventual(lag=0.5)
    assert client.seed == 42


def test_the_plugin_registers_its_markers(pytestconfig: pytest.Config) -> None:
    markers = "\n".join(pytestconfig.getini("markers"))
    for name in ("datastore_consistency", "datastore_seed", "datastore_options"):
        assert f"{name}(" in markers
    assert plugin.MARKERS


def test_a_failing_test_reports_its_policy_and_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.datastore_consistency("probability=0.0")
        @pytest.mark.datastore_seed(1234)
        def test_fails(datastore_client):
            assert False, "the app saw a stale read"

        def test_passes(datastore_client):
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*datastore_lite*",
            "datastore_client: consistency Eventual(probability=0.0), seed 1234 "
            "(replay with @pytest.mark.datastore_seed(1234))",
        ]
    )


# -- strategies -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store() -> Iterator[dict[str, Client]]:
    """One strongly consistent in-memory client per profile for the strategy tests."""
    clients = {
        profile: Client(
            project="test",
            url="sqlite://",
            consistency="strong",
            profile=profile,
            index_yaml=os.devnull,
        )
        for profile in ("legacy", "firestore")
    }
    yield clients
    for client in clients.values():
        client.close()


@FEW
@given(key=dls.keys(max_depth=3), name=dls.property_names(), value=dls.values())
def test_drawn_keys_and_values_store(
    store: dict[str, Client], key: Key, name: str, value: Any
) -> None:
    client = store["legacy"]
    assert key.project == "test" and not key.is_partial
    entity = Entity(key)
    entity[name] = value
    client.put(entity)
    assert client.get(key) is not None


@FEW
@given(entity=dls.entities())
def test_drawn_entities_round_trip(store: dict[str, Client], entity: Entity) -> None:
    assert entity.key is not None
    store["legacy"].put(entity)
    assert store["legacy"].get(entity.key) == entity


@FEW
@given(key=dls.keys(kinds=["Photo", "Album"], parent=Key("User", "u", project="test")))
def test_keys_with_given_kinds_and_parent(key: Key) -> None:
    assert key.kind in ("Photo", "Album")
    assert key.parent == Key("User", "u", project="test")


def test_keys_from_a_client(store: dict[str, Client]) -> None:
    client = Client(project="elsewhere", url="sqlite://", namespace="ns", consistency="strong")
    try:

        @FEW
        @given(key=dls.keys(client=client, kinds="Photo", identifiers=dls.ids()))
        def check(key: Key) -> None:
            assert (key.project, key.namespace, key.kind) == ("elsewhere", "ns", "Photo")
            assert isinstance(key.id, int) and key.id > 0

        check()
    finally:
        client.close()


@FEW
@given(kind=dls.kinds(), name=dls.key_names())
def test_names_are_never_reserved(kind: str, name: str) -> None:
    assert not (kind.startswith("__") and kind.endswith("__"))
    assert not (name.startswith("__") and name.endswith("__"))


SCHEMA = {
    "likes": dls.integers(0, 5),
    "tag": st.sampled_from(["a", "b", "c"]),
    "when": dls.datetimes(),
    "score": dls.floats(allow_infinity=False),
}
USERS = dls.keys(kinds="User", max_depth=1, identifiers=st.sampled_from(["u1", "u2"]))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), profile=st.sampled_from(["legacy", "firestore"]))
def test_drawn_queries_need_no_composite_index(
    store: dict[str, Client], data: st.DataObject, profile: str
) -> None:
    client = store[profile]
    photo = dls.entities(
        keys=dls.keys(kinds="Photo", parent=st.none() | USERS), properties=SCHEMA, optional=True
    )
    client.put_multi(list({e.key: e for e in data.draw(st.lists(photo, max_size=4))}.values()))
    query = data.draw(
        dls.queries(client, kind="Photo", properties=SCHEMA, ancestors=st.none() | USERS)
    )
    try:
        list(query.fetch(limit=10))
    except FailedPrecondition as error:  # pragma: no cover - the point of the test
        pytest.fail(f"{query.filters} order {query.order} needs an index: {error}")


def test_queries_need_properties(store: dict[str, Client]) -> None:
    with pytest.raises(ValueError, match="at least one property"):
        dls.queries(store["legacy"], kind="Photo", properties={})


# -- the worked example: a user's own property test of their app's consistency -------------------
#
# The app: photos are stored under their user (one entity group per user), so the user's
# stream is an ancestor query - strongly consistent. The home page lists the latest photos
# of everyone with a global query - eventually consistent.


def post_photo(client: Client, user: str, caption: str, number: int) -> Key:
    photo = Entity(client.key("User", user, "Photo"))
    photo.update(caption=caption, number=number)
    client.put(photo)
    assert photo.key is not None
    return photo.key


def user_stream(client: Client, user: str) -> list[str]:
    query = client.query(kind="Photo", ancestor=client.key("User", user))
    return [p["caption"] for p in sorted(query.fetch(), key=lambda p: -p["number"])]


def latest_page(client: Client, size: int = 20) -> list[str]:
    query = client.query(kind="Photo", order=["-number"])
    return [p["caption"] for p in query.fetch(limit=size)]


posts = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "carol"]),  # who posts
        st.text(min_size=1, max_size=10),  # the caption
        st.sampled_from(["author", "visitor"]),  # who looks first
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=15, deadline=None)
@given(posts=posts, seed=st.integers(0, 2**32 - 1))
def test_worked_example_stream_always_fresh_latest_page_eventually(
    posts: list[tuple[str, str, str]], seed: int
) -> None:
    clock = FakeClock()
    with temporary_client(consistency="hrd", seed=seed, clock=clock) as client:
        for number, (user, caption, first) in enumerate(posts, 1):
            post_photo(client, user, caption, number)

            def on_the_home_page(caption: str = caption) -> None:
                assert latest_page(client)[:1] == [caption]

            if first == "author":
                # strongly consistent: the author sees the photo at once, every time...
                assert user_stream(client, user)[0] == caption
                # ...and that read rolled the group forward: the home page shows it too
                on_the_home_page()
            else:
                # a visitor's home page: eventually, within the HRD model's 240 s worst
                # case, polled on the fake clock (no real waiting, and no apply_all: only
                # the app's own read path)
                eventually(on_the_home_page, client=client, timeout=300, interval=0.5)
                assert user_stream(client, user)[0] == caption


@pytest.mark.datastore_consistency("hrd")
@pytest.mark.datastore_seed(7)
def test_worked_example_with_the_fixtures(
    datastore_client: Client, datastore_clock: FakeClock
) -> None:
    post_photo(datastore_client, "alice", "sunset", 1)
    # right after the post the home page is stale: the HRD model's shortest delay is 100 ms
    assert latest_page(datastore_client) == []

    def on_the_home_page() -> None:
        assert latest_page(datastore_client) == ["sunset"]

    eventually(on_the_home_page, client=datastore_client, timeout=300, interval=0.05)
    assert datastore_clock.elapsed == pytest.approx(0.1, abs=1e-6)  # seed 7: 100 ms
    assert user_stream(datastore_client, "alice") == ["sunset"]
