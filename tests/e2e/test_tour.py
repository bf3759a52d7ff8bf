"""The README tour (docs/examples/tour.py) runs against the repo's own rules/ on a real server."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


async def test_the_readme_tour_runs(harness) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "docs" / "examples" / "tour.py"), harness.keys["admin_test"], harness.addr,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "outcome: OUTCOME_ALLOW refund.small_in_scope" in text
    assert "token valid: True" in text
    assert "reconciliation: RECONCILIATION_STATUS_MATCHED" in text
    assert "OUTCOME_REQUIRE_APPROVAL refund.medium_needs_approval → role finance_manager" in text
