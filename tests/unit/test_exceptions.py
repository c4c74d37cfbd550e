"""The exception hierarchy mirrors ``google.api_core.exceptions`` (SEMANTICS.md §7.2, DESIGN.md §3).

Names, parents, HTTP codes and ``str(exc) == "<code> <message>"`` match api_core, every class
derives from ``DatastoreLiteError``, and each is also an instance of the api_core class of the
same name, so ``except google.api_core.exceptions.Conflict`` keeps working.
"""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_core

from datastore_lite import exceptions

# (class, its parent in the tree) - SEMANTICS.md §7.2 and the api_core hierarchy
_TREE = [
    ("GoogleAPICallError", "DatastoreLiteError"),
    ("ClientError", "GoogleAPICallError"),
    ("ServerError", "GoogleAPICallError"),
    ("BadRequest", "ClientError"),
    ("InvalidArgument", "BadRequest"),
    ("FailedPrecondition", "BadRequest"),
    ("OutOfRange", "BadRequest"),
    ("Unauthenticated", "ClientError"),
    ("PermissionDenied", "ClientError"),
    ("NotFound", "ClientError"),
    ("Conflict", "ClientError"),
    ("Aborted", "Conflict"),
    ("AlreadyExists", "Conflict"),
    ("ResourceExhausted", "ClientError"),
    ("Cancelled", "ClientError"),
    ("InternalServerError", "ServerError"),
    ("MethodNotImplemented", "ServerError"),
    ("ServiceUnavailable", "ServerError"),
    ("GatewayTimeout", "ServerError"),
    ("DeadlineExceeded", "GatewayTimeout"),
    ("Unknown", "ServerError"),
]
_NAMES = [name for name, _ in _TREE]
# SEMANTICS.md §7.2: HTTP codes
_CODES = {
    "BadRequest": 400,
    "InvalidArgument": 400,
    "FailedPrecondition": 400,
    "OutOfRange": 400,
    "Unauthenticated": 401,
    "PermissionDenied": 403,
    "NotFound": 404,
    "Conflict": 409,
    "Aborted": 409,
    "AlreadyExists": 409,
    "ResourceExhausted": 429,
    "Cancelled": 499,
    "InternalServerError": 500,
    "MethodNotImplemented": 501,
    "ServiceUnavailable": 503,
    "GatewayTimeout": 504,
    "DeadlineExceeded": 504,
}


@pytest.mark.parametrize(("name", "parent"), _TREE)
def test_parent(name: str, parent: str) -> None:
    cls = getattr(exceptions, name)
    assert issubclass(cls, getattr(exceptions, parent))
    assert issubclass(cls, exceptions.DatastoreLiteError)


def test_key_relations() -> None:
    # SEMANTICS.md §7.2: Aborted is a Conflict, InvalidArgument a BadRequest, ...
    assert issubclass(exceptions.Aborted, exceptions.Conflict)
    assert issubclass(exceptions.AlreadyExists, exceptions.Conflict)
    assert issubclass(exceptions.InvalidArgument, exceptions.BadRequest)
    assert issubclass(exceptions.FailedPrecondition, exceptions.BadRequest)
    assert issubclass(exceptions.DeadlineExceeded, exceptions.GatewayTimeout)
    assert not issubclass(exceptions.NotFound, exceptions.Conflict)
    assert not issubclass(exceptions.Aborted, exceptions.BadRequest)
    assert not issubclass(exceptions.InvalidArgument, exceptions.ServerError)


@pytest.mark.parametrize("name", _NAMES)
def test_is_also_the_api_core_class_of_the_same_name(name: str) -> None:
    cls = getattr(exceptions, name)
    exc = cls("boom")
    api_cls = getattr(api_core, name)
    assert isinstance(exc, api_cls)
    assert isinstance(exc, api_core.GoogleAPICallError)
    assert isinstance(exc, exceptions.DatastoreLiteError)
    assert cls.code == api_cls.code


@pytest.mark.parametrize("name", sorted(_CODES))
def test_str_is_code_and_message(name: str) -> None:
    cls = getattr(exceptions, name)
    exc = cls("too much contention on these datastore entities. please try again.")
    assert exc.code == _CODES[name]
    assert exc.message == "too much contention on these datastore entities. please try again."
    expected = f"{_CODES[name]} too much contention on these datastore entities. please try again."
    assert str(exc) == expected
    # identical to what api_core prints for the same error
    assert str(exc) == str(getattr(api_core, name)(exc.message))


def test_api_core_except_clauses_catch_ours() -> None:
    with pytest.raises(api_core.Conflict):
        raise exceptions.Aborted(exceptions.CONTENTION_MESSAGE)
    with pytest.raises(api_core.BadRequest):
        raise exceptions.InvalidArgument("The kind is the empty string.")
    with pytest.raises(api_core.ClientError):
        raise exceptions.NotFound("no entity to update")
    with pytest.raises(exceptions.DatastoreLiteError):
        raise exceptions.DeadlineExceeded("slow")


def test_contention_message() -> None:
    # SEMANTICS.md §6.1: the legacy contention text
    assert (
        exceptions.CONTENTION_MESSAGE
        == "too much contention on these datastore entities. please try again."
    )
    assert str(exceptions.Aborted(exceptions.CONTENTION_MESSAGE)) == (
        "409 too much contention on these datastore entities. please try again."
    )


def test_module_exports_every_class() -> None:
    assert sorted(exceptions.__all__) == sorted([*_NAMES, "DatastoreLiteError"])
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), exceptions.DatastoreLiteError)
