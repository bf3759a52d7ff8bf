"""Bundle archives: deterministic building, and strict, safe reading (every refusal)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gavel import Engine, PolicyError
from gavel.bundles import (
    FORMAT,
    Bundle,
    BundleError,
    build_archive,
    bundle_from_directory,
    make_bundle,
    read_archive,
    write_archive,
)
from gavel.engine.policy import bundle_hash
from gavel.ledger.canonical import canonical_bytes
from gavel.sources import SourceError

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
RULES = """package payments
scope action.type == "payment"
rule known allow "payment.known_vendor" when action.entity in data.vendors
"""
VENDORS = '["acme", "globex"]'


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    (d / "data").mkdir(parents=True)
    (d / "payments.rules").write_text(RULES)
    (d / "data" / "vendors.json").write_text(VENDORS)
    return d


def build(d: Path, **kw) -> bytes:
    return build_archive(d, **{"version": "v1", "author": "alice", "now": NOW, **kw})


# ---------------------------------------------------------------- hand-made archives

def manifest_for(files: dict[str, str], /, **override) -> dict:
    m = {"format": FORMAT, "bundle_hash": bundle_hash(files), "version": "v", "created_at": None, "author": None,
         "source_revision": None,
         "files": [{"name": n, "sha256": hashlib.sha256(t.encode()).hexdigest(), "bytes": len(t.encode())}
                   for n, t in sorted(files.items())]}
    return {**m, **override}


def tar_gz(entries: list[tuple[str, bytes] | tarfile.TarInfo]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
                continue
            name, data = entry
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def archive_of(files: dict[str, str], manifest: dict | None = None, extra=()) -> bytes:
    entries = [(f"files/{n}", t.encode()) for n, t in files.items()]
    entries.append(("manifest.json", canonical_bytes(manifest or manifest_for(files))))
    return tar_gz([*entries, *extra])


GOOD = {"payments.rules": RULES, "data/vendors.json": VENDORS}


def refused(data: bytes, **kw) -> str:
    with pytest.raises(BundleError) as caught:
        read_archive(data, **kw)
    return caught.value.message


# ---------------------------------------------------------------- building

def test_build_then_read_round_trips(rules_dir: Path) -> None:
    bundle = read_archive(build(rules_dir, source_revision="a" * 40))
    assert bundle.files == GOOD
    assert bundle.bundle_hash == Engine.load(rules_dir).bundle_hash == bundle.manifest["bundle_hash"]
    assert bundle.manifest == {
        "format": "gavel.bundle/1", "bundle_hash": bundle.bundle_hash, "version": "v1",
        "created_at": "2026-11-22T12:00:00Z", "author": "alice", "source_revision": "a" * 40,
        "files": [{"name": "data/vendors.json", "sha256": hashlib.sha256(VENDORS.encode()).hexdigest(),
                   "bytes": len(VENDORS)},
                  {"name": "payments.rules", "sha256": hashlib.sha256(RULES.encode()).hexdigest(),
                   "bytes": len(RULES)}]}
    assert bundle.signature is None and bundle.version == "v1"


def test_the_archive_layout_is_fixed(rules_dir: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(build(rules_dir)))) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["files/data/vendors.json", "files/payments.rules", "manifest.json"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) for m in members} == {
        (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)}


def test_the_same_input_and_time_give_the_same_bytes(rules_dir: Path, tmp_path: Path) -> None:
    first = build(rules_dir)
    (rules_dir / "payments.rules").touch()  # a newer mtime on disk changes nothing
    assert build(rules_dir) == first
    assert build(rules_dir, now=datetime(2026, 11, 23, tzinfo=UTC)) != first
    assert gzip.decompress(first)  # a plain gzip stream
    assert first[4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_building_refuses_rules_that_do_not_compile(rules_dir: Path) -> None:
    (rules_dir / "bad.rules").write_text("package bad\nrule r allow when action.amout > 1\n")
    with pytest.raises(BundleError) as caught:
        build(rules_dir)
    (d,) = caught.value.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E101", 2, 19) and d.span.file.endswith("bad.rules")
    assert "bad.rules:2:19: error[E101]: unknown path `action.amout`" in caught.value.message


def test_building_refuses_bad_data_an_empty_directory_and_unreadable_files(rules_dir: Path, tmp_path: Path) -> None:
    (rules_dir / "data" / "vendors.json").write_text("[1,")
    with pytest.raises(BundleError) as caught:
        build(rules_dir)
    assert caught.value.diagnostics[0].code == "E008"
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no .rules files"):
        build(tmp_path / "empty")
    (rules_dir / "data" / "vendors.json").write_bytes(b"\xff")
    with pytest.raises(BundleError, match="not valid UTF-8") as caught:
        build(rules_dir)
    assert caught.value.diagnostics[0].code == "E007"
    with pytest.raises(BundleError, match="not a directory"):
        build(tmp_path / "absent")


def test_bundle_from_directory_matches_engine_load(rules_dir: Path) -> None:
    bundle = bundle_from_directory(rules_dir)
    assert bundle.files == GOOD and bundle.version == "rules-dir" and bundle.signature is None
    engine = Engine.from_bundle(bundle)
    assert engine.bundle_hash == bundle.bundle_hash == Engine.load(rules_dir).bundle_hash
    assert Engine.from_bundle(bundle) is engine  # the compile cache, by hash
    (rules_dir / "x.rules").write_bytes(b"\xff")
    with pytest.raises(SourceError):
        bundle_from_directory(rules_dir)


def test_an_engine_from_a_bundle_locates_rules_by_bundle_name(rules_dir: Path) -> None:
    bundle = read_archive(build(rules_dir))
    engine = Engine.from_bundle(bundle)
    (rule,) = engine.policy.rules
    assert rule.location == "payments.rules:3"
    span = rule.ir.span
    assert engine.policy.sources[span.file].text == bundle.files[span.file]
    assert bundle.files[span.file].splitlines()[span.line - 1].startswith("rule known")


def test_a_bundle_that_reads_well_but_does_not_compile_is_a_policy_error() -> None:
    bundle = read_archive(archive_of({"p.rules": "package p\nrule r allow when action.amout > 1\n"}))
    with pytest.raises(PolicyError) as caught:
        Engine.from_bundle(bundle)
    assert caught.value.diagnostics[0].span.file == "p.rules"


def test_make_bundle_refuses_names_outside_the_format() -> None:
    for name in ("README.md", "../x.rules", "/abs.rules", ".hidden/x.rules", "a//b.rules", "vendors.json"):
        with pytest.raises(BundleError):
            make_bundle({name: "package p\n"}, version="v")


def test_hand_made_archives_like_the_e2e_tests_build_are_read() -> None:
    bundle = read_archive(archive_of(GOOD))
    assert bundle.files == GOOD and bundle.bundle_hash == bundle_hash(GOOD)
    assert write_archive(bundle) != archive_of(GOOD) and read_archive(write_archive(bundle)) == bundle


# ---------------------------------------------------------------- refusals

def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize(("extra", "message"), [
    ([("files/../evil.rules", b"x")], "refused entry `files/../evil.rules`: `..` is not allowed"),
    ([("../evil", b"x")], "refused entry `../evil`: `..` is not allowed"),
    ([("/etc/passwd", b"x")], "refused entry `/etc/passwd`: absolute paths are not allowed"),
    ([("files/./x.rules", b"x")], "empty and `.` path segments are not allowed"),
    ([("files\\x.rules", b"x")], "backslashes"),
    ([special("files/link.rules", tarfile.SYMTYPE, "/etc/passwd")], "links are not allowed"),
    ([special("files/hard.rules", tarfile.LNKTYPE, "files/payments.rules")], "links are not allowed"),
    ([special("files/dev.rules", tarfile.CHRTYPE)], "only regular files are allowed"),
    ([special("files/fifo.rules", tarfile.FIFOTYPE)], "only regular files are allowed"),
    ([special("files/sub", tarfile.DIRTYPE)], "only regular files are allowed"),
    ([("files/payments.rules", RULES.encode())], "the name appears twice"),
    ([("files/extra.rules", b"package extra\n")], "`files/extra.rules` is not listed in the manifest"),
    ([("README.md", b"hi")], "unexpected entry `README.md`"),
])
def test_unsafe_or_unexpected_entries_are_refused(extra, message: str) -> None:
    assert message in refused(archive_of(GOOD, extra=extra))


def test_a_listed_file_that_is_missing_is_refused() -> None:
    files = {"payments.rules": RULES}
    manifest = manifest_for({**GOOD})
    assert "`files/data/vendors.json` is listed in the manifest but missing" in refused(archive_of(files, manifest))


def test_a_tampered_file_is_refused() -> None:
    tampered = {**GOOD, "data/vendors.json": '["acme", "globex", "mallory"]'}
    assert "`files/data/vendors.json` does not match its sha256" in refused(
        archive_of(tampered, manifest_for(GOOD)))


def test_a_tampered_manifest_hash_is_refused() -> None:
    forged = manifest_for(GOOD, bundle_hash="sha256:" + "0" * 64)
    assert refused(archive_of(GOOD, forged)) == "the manifest's bundle_hash does not match its files"


def test_non_utf8_text_is_refused() -> None:
    raw = b"package p\n# \xff\n"
    manifest = manifest_for({"p.rules": "x"})
    manifest["files"] = [{"name": "p.rules", "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}]
    data = tar_gz([("files/p.rules", raw), ("manifest.json", canonical_bytes(manifest))])
    assert refused(data) == "`files/p.rules` is not valid UTF-8 (byte 12)"


@pytest.mark.parametrize(("manifest", "message"), [
    ({"format": "gavel.bundle/2"}, "unsupported bundle format `gavel.bundle/2`"),
    ({"extra": 1}, "has unknown field `extra`"),
    ({"version": ""}, "`version` must be a string"),
    ({"author": 5}, "`author` must be a string or null"),
    ({"bundle_hash": "md5:x"}, "`bundle_hash` is not `sha256:`"),
    ({"files": [{"name": "README.md", "sha256": "0" * 64, "bytes": 1}]}, "a bundle holds only `.rules` files"),
    ({"files": [{"name": "p.rules", "sha256": "0" * 64, "bytes": True}]}, "`bytes` is not a size"),
])
def test_malformed_manifests_are_refused(manifest: dict, message: str) -> None:
    assert message in refused(archive_of(GOOD, manifest_for(GOOD, **manifest)))


def test_a_manifest_must_be_there_and_be_strict_json() -> None:
    assert refused(tar_gz([("files/payments.rules", RULES.encode())])) == "the archive has no manifest.json"
    dup = b'{"format": "gavel.bundle/1", "format": "x"}'
    assert "manifest.json is not valid JSON: a key given twice" in refused(tar_gz([("manifest.json", dup)]))
    assert "is not valid JSON" in refused(tar_gz([("manifest.json", b'{"bytes": 1.5}')]))


def test_not_a_gzip_or_not_a_tar_is_refused() -> None:
    assert refused(b"just text").startswith("not a gzip archive")
    assert refused(b"").startswith("not a gzip archive")
    assert refused(gzip.compress(b"hello, this is no tar" * 50)).startswith("not a valid tar archive")
    assert refused(gzip.compress(b"")).startswith("not a valid tar archive")
    assert refused(b"\x1f\x8b" + b"\xff" * 30).startswith("not a valid gzip archive")


def test_truncated_and_trailing_gzip_data_is_refused() -> None:
    good = archive_of(GOOD)
    assert refused(good[: len(good) // 2]) == "the gzip stream is truncated"
    assert refused(good + b"more") == "unexpected data after the gzip stream"
    assert refused(good + gzip.compress(b"x")) == "unexpected data after the gzip stream"


def test_a_gzip_bomb_stops_at_the_unpacked_limit() -> None:
    bomb = gzip.compress(b"\0" * (80 * 1024 * 1024), compresslevel=9)  # ~80 KB on the wire
    assert len(bomb) < 1024 * 1024
    assert refused(bomb) == f"the archive unpacks to more than {4 * 16 * 1024 * 1024} bytes"
    small = gzip.compress(b"\0" * (5 * 1024 * 1024))
    assert refused(small, max_bytes=1024 * 1024) == f"the archive unpacks to more than {4 * 1024 * 1024} bytes"


def test_size_and_count_limits() -> None:
    good = archive_of(GOOD)
    assert refused(good, max_bytes=len(good) - 1) == f"the archive is larger than {len(good) - 1} bytes"
    big = {"p.rules": "package p\n" + "# padding\n" * 20_000}
    assert "add up to more than" in refused(archive_of(big), max_bytes=100_000)
    many = {f"p{i}.rules": f"package p{i}\n" for i in range(5)}
    assert refused(archive_of(many), max_files=3) == "the archive has more than 3 files"


def test_a_bundle_is_a_plain_value() -> None:
    bundle = read_archive(archive_of(GOOD))
    assert bundle == Bundle(dict(GOOD), bundle.manifest, None)
