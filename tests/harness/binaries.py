"""External programs some tests run (Alertmanager, Prometheus, minisign).

On a fresh machine with only Python and make, a test that needs one skips with a one-line reason.
`.ci/run` sets HH_TEST_REQUIRE_BINARIES=1, under which a missing program fails the test instead:
CI installs them, so a skip there would hide a broken install step.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "HH_TEST_REQUIRE_BINARIES"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def require_binary(*names: str, package: str) -> str:
    """The path of the first of `names` on PATH; otherwise skip (or fail under CI)."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    reason = f"{names[0]} is not installed (Debian package {package}; .ci/run installs it)"
    if required():
        pytest.fail(f"{reason}, and {REQUIRE_ENV} is set")
    pytest.skip(reason)
