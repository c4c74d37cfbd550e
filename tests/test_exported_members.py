"""The public namespace is pinned (STYLE.md §8 rule 1, DESIGN.md §3).

``__all__`` is sorted the way httpx's ``tests/test_exported_members.py`` checks it
(case-insensitively) and lists exactly the public names of the package; the official
client's names and submodules exist.
"""

from __future__ import annotations
import __future__

import importlib
import inspect

import pytest

import datastore_lite


def _public_names() -> list[str]:
    """Names a user sees on the package: not private, not submodules, not future flags."""
    names = []
    for name, value in vars(datastore_lite).items():
        if name.startswith("_") and name != "__version__":
            continue
        if inspect.ismodule(value) or isinstance(value, __future__._Feature):
            continue
        names.append(name)
    return names


def test_all_is_sorted_case_insensitively() -> None:
    assert datastore_lite.__all__ == sorted(datastore_lite.__all__, key=str.casefold)


def test_all_equals_the_public_names() -> None:
    assert sorted(datastore_lite.__all__) == sorted(_public_names())
    for name in datastore_lite.__all__:
        assert hasattr(datastore_lite, name), name


def test_all_has_no_duplicates() -> None:
    assert len(set(datastore_lite.__all__)) == len(datastore_lite.__all__)


@pytest.mark.parametrize("name", ["Client", "Entity", "Key", "Batch", "Transaction"])
def test_official_names_exist(name: str) -> None:
    # SEMANTICS.md §8: package exports of google.cloud.datastore
    assert name in datastore_lite.__all__
    assert inspect.isclass(getattr(datastore_lite, name))


def test_version_is_a_string() -> None:
    assert isinstance(datastore_lite.__version__, str) and datastore_lite.__version__


@pytest.mark.parametrize(
    ("module", "member"),
    [
        ("client", "Client"),
        ("key", "Key"),
        ("entity", "Entity"),
        ("helpers", "GeoPoint"),
        ("batch", "Batch"),
        ("transaction", "Transaction"),
        ("query", "Query"),
        ("aggregation", "AggregationQuery"),
    ],
)
def test_official_submodules_exist(module: str, member: str) -> None:
    # DESIGN.md §3: the same submodules as google-cloud-datastore
    mod = importlib.import_module(f"datastore_lite.{module}")
    assert inspect.isclass(getattr(mod, member))
    if hasattr(datastore_lite, member):
        assert getattr(datastore_lite, member) is getattr(mod, member)
