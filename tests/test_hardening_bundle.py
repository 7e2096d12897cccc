"""Issue 11, item 3: bundle tarballs cannot write outside themselves, never half-extract, fail in one line."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import renderer_support as support
from helpers import one_line_error as _one_line_error

from latentcast import bundle as reader
from latentcast.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return support.make_bundle(tmp_path_factory.mktemp("good") / "latentcast-bundle-good")


def _tar(path: Path, folder: Path, extra: dict[str, bytes] | None = None) -> Path:
    """`folder` as <folder.name>/... in a .tar.gz, plus raw `extra` members named as given."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _renderer(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "renderer.run", "--frames", "1", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_member_escaping_into_a_sibling_bundle_is_refused_through_the_renderer_cli(good, tmp_path):
    sibling = shutil.copytree(good, tmp_path / "latentcast-bundle-sibling")
    victim = sibling / "models/gesture/decoder.onnx"
    before = victim.read_bytes()
    evil_dir = shutil.copytree(good, tmp_path / "src" / "latentcast-bundle-evil")
    escape = "latentcast-bundle-evil/../latentcast-bundle-sibling/models/gesture/decoder.onnx"
    evil = _tar(tmp_path / "latentcast-bundle-evil.tar.gz", evil_dir, {escape: b"evil"})
    _one_line_error(_renderer("--bundle", str(evil), "--out", str(tmp_path / "o")), "outside the bundle directory")
    assert victim.read_bytes() == before
    assert not (tmp_path / "latentcast-bundle-evil").exists()
    assert reader.open_bundle(sibling).version == "test-0"


@pytest.mark.parametrize(
    "name",
    ["/etc/latentcast-evil", "latentcast-bundle-good/../../escape", "other-top/file"],
)
def test_absolute_parent_and_second_top_level_members_are_refused(good, tmp_path, name):
    tarball = _tar(tmp_path / "b.tar.gz", good, {name: b"x"})
    with pytest.raises(reader.BundleError):
        reader.extract(tarball, tmp_path / "out")
    assert not (tmp_path / "out" / good.name).exists()


def test_symlink_member_is_refused(good, tmp_path):
    tarball = tmp_path / "link.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(good, arcname=good.name)
        info = tarfile.TarInfo(f"{good.name}/models/gesture/link.onnx")
        info.type, info.linkname = tarfile.SYMTYPE, "decoder.onnx"
        tar.addfile(info)
    with pytest.raises(reader.BundleError, match="link or special file"):
        reader.extract(tarball, tmp_path / "out")


def test_truncated_tarball_is_one_line_error_and_leaves_nothing_behind(good, tmp_path):
    (tmp_path / "src").mkdir()
    whole = _tar(tmp_path / "src" / "latentcast-bundle-good.tar.gz", good).read_bytes()
    cut = tmp_path / "latentcast-bundle-good.tar.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    for _ in range(2):  # the second start must fail the same way, not accept a half-extracted folder
        _one_line_error(_renderer("--bundle", str(cut), "--out", str(tmp_path / "o")), "not a readable .tar.gz")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["latentcast-bundle-good.tar.gz", "src"]
    result = subprocess.run([sys.executable, "-m", "latentcast.bundle", "verify", str(cut)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    _one_line_error(result, "not a readable .tar.gz")


def test_extraction_failing_midway_is_cleaned_up_and_a_retry_succeeds(good, tmp_path, monkeypatch):
    tarball = _tar(tmp_path / "latentcast-bundle-good.tar.gz", good)
    calls = {"n": 0}
    original = tarfile.TarFile._extract_one

    def disk_full_after_three(self, *args, **kwargs):  # no way to fill a real disk here: fail the 4th member
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "_extract_one", disk_full_after_three)
    with pytest.raises(reader.BundleError, match="No space left"):
        reader.open_bundle(tarball)
    assert calls["n"] > 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [tarball.name]  # no bundle folder, no scratch folder
    monkeypatch.setattr(tarfile.TarFile, "_extract_one", original)
    assert reader.open_bundle(tarball).version == "test-0"


def test_corrupt_onnx_with_a_matching_hash_is_one_line_error(good, tmp_path):
    bad = shutil.copytree(good, tmp_path / "latentcast-bundle-bad")
    (bad / "models/expression/decoder.onnx").write_bytes(b"\x08\x07not an onnx graph" * 20)
    manifest = json.loads((bad / reader.MANIFEST).read_text())
    manifest["files"] = reader.file_entries(bad)  # the attacker (or a broken export) updated the hashes too
    (bad / reader.MANIFEST).write_text(json.dumps(manifest))
    _one_line_error(_renderer("--bundle", str(bad), "--out", str(tmp_path / "o")), "decoder.onnx", "not a loadable")
    from latentcast.inference import DecoderSession

    with pytest.raises(UserError, match="re-export"):
        DecoderSession(bad / "models/expression/decoder.onnx")
