"""Settings for the whole suite.

In CI (`CI` set) Hypothesis draws the same examples on every run (`derandomize`), so a red build
is the change's doing, not the dice's; run locally, it explores new examples each time and keeps
the failing ones in `.hypothesis/` to replay first.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
