"""The one hypothesis profile of the fuzzers: a fixed, derandomized run CI can repeat.

XARCH_FUZZ_EXAMPLES overrides the number of examples (CI: 1,000 each).
"""

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("XARCH_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    derandomize=True,
    max_examples=EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
