"""Fuzz tests (issue 8): every framer, PBX parser, PMS decoder and the config loader, fed random and
mutated input, must give an event or one of the project's errors (``ProtocolError``, ``ConfigError``),
never an uncaught exception, and keep their buffers bounded.

Budget: ``FUZZ_EXAMPLES`` examples per test (default 60, what CI runs); ``make fuzz`` raises it
(``FUZZ_EXAMPLES=5000 make fuzz`` for a long run). Hypothesis keeps failing examples in its database, so a
long run's finds are replayed by the next short one on the same machine.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

settings.register_profile(
    "fuzz", max_examples=EXAMPLES, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ = settings(settings.get_profile("fuzz"))
