"""Query explain options, accepted for API parity with ``google.cloud.datastore.query_profile``.

datastore_lite does not produce query profiles; ``iterator.explain_metrics`` raises
:class:`QueryExplainError` as the official client does when none are available.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExplainOptions", "QueryExplainError"]


@dataclass(frozen=True)
class ExplainOptions:
    """``analyze=True`` would run the query and return statistics (not supported)."""

    analyze: bool = False


class QueryExplainError(Exception):
    """Explain metrics are not available."""
