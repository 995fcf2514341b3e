"""How many examples a property test tries: all of them in `make test` (and CI), a fifth in `make unit`.

`make unit` is the edit-test loop and sets QUICK_TESTS=1 (not OPERATOR_…: the bot refuses unknown variables of its own prefix): every property still runs, on fewer
generated inputs (at least 20), so the loop stays well under a minute on two cores. Hypothesis's own
profiles cannot do this: a `@settings(max_examples=…)` on a test overrides the loaded profile.
"""

from __future__ import annotations

import os

QUICK = os.environ.get("QUICK_TESTS") == "1"


def examples(full: int) -> int:
    """`full` normally; a fifth of it (at least 20, at most `full`) when the run is quick."""
    return min(full, max(20, full // 5)) if QUICK else full
