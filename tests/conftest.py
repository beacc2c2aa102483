"""Suite-wide settings: Hypothesis runs derandomised on CI, so a failure found there replays exactly."""

from __future__ import annotations

import os

from hypothesis import settings

# "ci": the examples derive from each test's own code (derandomize), no example database between runs,
# no deadline (2 shared cores make timing noisy). Loaded when CI=true, or by HYPOTHESIS_PROFILE=ci.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"))
