"""Golden files: compare an output with its expected file, which only GAVEL_UPDATE_GOLDENS=1 writes.

A missing expected file is a failure, never a file written and then compared with itself: a case
added without its expected output (or one deleted by mistake) must not pass unseen.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

UPDATE_VARIABLE = "GAVEL_UPDATE_GOLDENS"


def updating() -> bool:
    return os.environ.get(UPDATE_VARIABLE) == "1"


def check_golden(expected_file: Path, actual: str) -> None:
    """Fail unless `actual` equals the expected file; with GAVEL_UPDATE_GOLDENS=1, write it first."""
    if updating():
        expected_file.write_text(actual, encoding="utf-8")
    elif not expected_file.exists():
        pytest.fail(f"{expected_file} is missing: write it with {UPDATE_VARIABLE}=1 and review it", pytrace=False)
    assert actual == expected_file.read_text(encoding="utf-8")
