"""`gavel bundle build|inspect`: output, exit codes (0 ok, 1 bad rules or archive, 2 usage), git."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gavel.bundles import read_archive, source_revision
from gavel.cli import main
from gavel.crypto.keys import Ed25519KeyPair, b64url_encode

RULES = 'package p\nrule r allow "p.r" when action.entity in data.vendors\n'
KEY = Ed25519KeyPair.from_seed(bytes(range(32)))
OTHER = Ed25519KeyPair.from_seed(bytes(range(1, 33)))


@pytest.fixture(autouse=True)
def no_git_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep git from finding a repository above the test's directory."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    (d / "data").mkdir(parents=True)
    (d / "p.rules").write_text(RULES)
    (d / "data" / "vendors.json").write_text('["acme"]')
    return d


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def key_file(tmp_path: Path, doc: dict, name: str = "key.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def jwks_file(tmp_path: Path, *keys: Ed25519KeyPair) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [k.public_jwk() for k in keys]}))
    return path


def test_build_prints_the_hash_and_inspect_shows_the_manifest(rules_dir: Path, tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("USER", "alice")
    out_file = tmp_path / "b.tar.gz"
    code, out, err = run(capsys, "bundle", "build", str(rules_dir), "-o", str(out_file), "--version", "v7")
    assert code == 0
    bundle = read_archive(out_file.read_bytes())
    assert out == bundle.bundle_hash + "\n"
    assert "2 files, version v7" in err
    assert (bundle.manifest["version"], bundle.manifest["author"], bundle.manifest["source_revision"]) == (
        "v7", "alice", None)

    code, out, _ = run(capsys, "bundle", "inspect", str(out_file))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"bundle     {bundle.bundle_hash}"
    assert "version    v7" in lines and "author     alice" in lines and "revision   -" in lines
    assert "signature  unsigned" in lines
    assert any(line.startswith("created    ") and line.endswith("Z") for line in lines)
    assert f"files      2 ({len(RULES) + 8} bytes)" in lines
    assert lines[-2:] == [f"  {8:>2}  data/vendors.json", f"  {len(RULES)}  p.rules"]

    code, out, _ = run(capsys, "bundle", "inspect", str(out_file), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc == {"manifest": bundle.manifest, "signature": {"status": "unsigned", "kid": None}}


def test_default_version_label_is_a_timestamp_outside_git(rules_dir: Path, tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "b.tar.gz"
    assert run(capsys, "bundle", "build", str(rules_dir), "-o", str(out_file), "--author", "bob")[0] == 0
    manifest = read_archive(out_file.read_bytes()).manifest
    assert manifest["author"] == "bob"
    assert len(manifest["version"]) == 16 and manifest["version"].endswith("Z")


def test_build_refuses_rules_that_do_not_compile(rules_dir: Path, tmp_path: Path, capsys) -> None:
    (rules_dir / "bad.rules").write_text("package bad\nrule r allow when action.amout > 1\n")
    out_file = tmp_path / "b.tar.gz"
    code, out, err = run(capsys, "bundle", "build", str(rules_dir), "-o", str(out_file))
    assert code == 1 and out == ""
    assert "bad.rules:2:19: error[E101]: unknown path `action.amout`" in err
    assert "1 error: no bundle written" in err
    assert not out_file.exists()


@pytest.mark.parametrize("argv", [
    ["bundle", "build", "{tmp}/absent", "-o", "{tmp}/b.tar.gz"],
    ["bundle", "build", "{rules}", "-o", "{tmp}/no/such/dir/b.tar.gz"],
    ["bundle", "build", "{rules}", "-o", "{tmp}/b.tar.gz", "--sign-key", "{tmp}/absent.json"],
    ["bundle", "build", "{rules}", "-o", "{tmp}/b.tar.gz", "--sign-key", "{rules}/data/vendors.json"],
    ["bundle", "inspect", "{tmp}/absent.tar.gz"],
])
def test_usage_errors_exit_2(argv: list[str], rules_dir: Path, tmp_path: Path, capsys) -> None:
    args = [a.format(tmp=tmp_path, rules=rules_dir) for a in argv]
    code, _, err = run(capsys, *args)
    assert code == 2 and err.startswith(f"gavel bundle {args[1]}: ")


def test_missing_arguments_are_usage_errors(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["bundle", "build", "rules"])  # no -o
    assert caught.value.code == 2


def test_inspect_a_corrupt_archive_exits_1(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a bundle")
    code, _, err = run(capsys, "bundle", "inspect", str(bad))
    assert code == 1 and "not a gzip archive" in err


@pytest.mark.parametrize("doc", [
    {"seed": b64url_encode(bytes(range(32)))},
    {"active": {"seed": b64url_encode(bytes(range(32))), "kid": "x"}, "retired": []},  # signing-keys.json
])
def test_signed_bundles_and_checking_them_with_a_jwks(doc: dict, rules_dir: Path, tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "b.tar.gz"
    code, _, err = run(capsys, "bundle", "build", str(rules_dir), "-o", str(out_file),
                       "--sign-key", str(key_file(tmp_path, doc)))
    assert code == 0 and f"signed by {KEY.kid}" in err

    code, out, _ = run(capsys, "bundle", "inspect", str(out_file))
    assert code == 0 and f"signature  signed by {KEY.kid}, not checked (pass --jwks FILE to check it)" in out

    code, out, _ = run(capsys, "bundle", "inspect", str(out_file), "--jwks", str(jwks_file(tmp_path, KEY)))
    assert code == 0 and f"signature  valid, signed by {KEY.kid}" in out

    code, out, _ = run(capsys, "bundle", "inspect", str(out_file), "--jwks", str(jwks_file(tmp_path, OTHER)),
                       "--json")
    assert code == 1 and json.loads(out)["signature"] == {"status": "unknown_key", "kid": KEY.kid}


def test_checking_an_unsigned_bundle_against_keys_exits_1(rules_dir: Path, tmp_path: Path, capsys) -> None:
    out_file = tmp_path / "b.tar.gz"
    assert run(capsys, "bundle", "build", str(rules_dir), "-o", str(out_file))[0] == 0
    code, out, _ = run(capsys, "bundle", "inspect", str(out_file), "--jwks", str(jwks_file(tmp_path, KEY)))
    assert code == 1 and "signature  unsigned" in out


def test_the_gavel_entry_point_lists_the_bundle_command(tmp_path: Path) -> None:
    import sys

    done = subprocess.run([sys.executable, "-m", "gavel.cli", "bundle", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "build" in done.stdout and "inspect" in done.stdout


# ---------------------------------------------------------------- git

def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=Tess Ter", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True, timeout=30).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_building_inside_a_git_repo_records_the_commit(rules_dir: Path, tmp_path: Path, capsys) -> None:
    assert source_revision(rules_dir) is None
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "rules")
    git(tmp_path, "commit", "-q", "-m", "rules")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert source_revision(rules_dir) == head == source_revision(rules_dir / "p.rules")
    out_file = tmp_path / "b.tar.gz"
    assert run(capsys, "bundle", "build", str(rules_dir), "-o", str(out_file), "--author", "x")[0] == 0
    manifest = read_archive(out_file.read_bytes()).manifest
    assert manifest["source_revision"] == head and manifest["version"] == head[:12]


def test_source_revision_is_none_without_git(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert source_revision(tmp_path) is None
