"""Functions the benchmarks call inside contexts (served on demand by the controller).

Kept free of imports beyond the standard library so that serving this module costs
one small round trip, paid once per context before any timing starts.
"""

from __future__ import annotations


def noop() -> None:
    """Do nothing: the cost of a call is then all transport and dispatch."""
    return
