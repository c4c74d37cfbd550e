"""Rule profiles (DESIGN.md §4): legacy High-Replication Datastore, or Firestore in
Datastore mode."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIRESTORE", "LEGACY", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """The rules that differ between the two products (SEMANTICS.md §0)."""

    name: str
    #: an empty list indexes as a null entry (legacy) or has no entry (Firestore)
    empty_list_is_null: bool
    #: entity groups one transaction may touch (None: unlimited)
    max_groups_per_transaction: int | None
    #: only ancestor queries may run inside a transaction
    ancestor_queries_only_in_transactions: bool
    #: inequality filters on more than one property are allowed
    multiple_inequalities: bool
    #: seconds a transaction may stay open (None: unlimited)
    transaction_time_limit: float | None
    #: the default consistency of global queries
    default_consistency: str


LEGACY = Profile(
    name="legacy",
    empty_list_is_null=True,
    max_groups_per_transaction=25,
    ancestor_queries_only_in_transactions=True,
    multiple_inequalities=False,
    transaction_time_limit=60.0,
    default_consistency="hrd",
)

FIRESTORE = Profile(
    name="firestore",
    empty_list_is_null=False,
    max_groups_per_transaction=None,
    ancestor_queries_only_in_transactions=False,
    multiple_inequalities=True,
    transaction_time_limit=270.0,
    default_consistency="strong",
)

_PROFILES = {"legacy": LEGACY, "firestore": FIRESTORE}


def get_profile(name: str | Profile) -> Profile:
    """Look a profile up by name.

    Raises:
        ValueError: An unknown name; the message lists the allowed ones.
    """
    if isinstance(name, Profile):
        return name
    profile = _PROFILES.get(name)
    if profile is None:
        raise ValueError(f"profile must be 'legacy' or 'firestore', not {name!r}")
    return profile
