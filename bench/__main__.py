"""Run the benchmarks and print one table, each figure next to its target.

    python -m bench                 # capacity, ack, pending, delivery, polls, plan_learning, memory, replicas,
                                    # jobcost, waiting, export, ingress, tenants, soak (~65 min; the soak alone is 30)
    python -m bench ack polls       # a subset

Exits 0 even when a target is missed (this is a report); a missed target reads MISSED.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
import traceback
from unittest import mock

from .common import table

ORDER = ("capacity", "ack", "pending", "delivery", "polls", "plan_learning", "memory", "replicas", "jobcost",
         "waiting", "export", "ingress", "tenants", "soak")


def _capacity_rows(module, figures: dict) -> list:
    """bench.capacity prints its own table: capture its rows instead of duplicating them."""
    captured: list = []
    with mock.patch.object(module, "table", lambda rows: captured.extend(rows) or ""):
        module.report(figures)
    return captured


def run_one(name: str) -> list:
    module = importlib.import_module(f"bench.{name}")
    figures = asyncio.run(module.run())
    return _capacity_rows(module, figures) if name == "capacity" else module.rows(figures)


def main(argv: list[str]) -> int:
    names = argv or list(ORDER)
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ORDER)}", file=sys.stderr)
        return 2
    all_rows: list = []
    for name in names:
        t0 = time.monotonic()
        print(f"== {name} ...", flush=True)
        try:
            rows = run_one(name)
        except Exception as exc:  # a report: one broken benchmark does not hide the others
            traceback.print_exc()
            rows = [("did not complete", f"{type(exc).__name__}: {exc}"[:80], "", False)]
        print(table(rows), flush=True)
        print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
        all_rows.append((f"[{name}]", "", "", None))
        all_rows.extend(rows)
    missed = sum(1 for r in all_rows if r[3] is False)
    print()
    print(table(all_rows))
    print()
    print(f"{missed} target(s) MISSED" if missed else "all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
