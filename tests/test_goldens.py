"""The golden helper itself: a missing expected file fails unless goldens are being updated."""

from __future__ import annotations

import pytest

from tests.goldens import UPDATE_VARIABLE, check_golden


def test_a_missing_expected_file_fails_and_is_not_written(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(UPDATE_VARIABLE, raising=False)
    expected = tmp_path / "case.expected"
    with pytest.raises(pytest.fail.Exception, match="case.expected is missing: write it with GAVEL_UPDATE_GOLDENS=1"):
        check_golden(expected, "output\n")
    assert not expected.exists()


def test_updating_writes_the_expected_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(UPDATE_VARIABLE, "1")
    expected = tmp_path / "case.expected"
    check_golden(expected, "output\n")
    assert expected.read_text(encoding="utf-8") == "output\n"


def test_a_different_output_fails(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(UPDATE_VARIABLE, raising=False)
    expected = tmp_path / "case.expected"
    expected.write_text("output\n", encoding="utf-8")
    check_golden(expected, "output\n")
    with pytest.raises(AssertionError):
        check_golden(expected, "other\n")
    assert expected.read_text(encoding="utf-8") == "output\n"
