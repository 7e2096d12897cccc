"""The bundle reader against a bundle written here by hand from docs/EXPORT.md (no torch, no export code):
manifest = sha256 + size of every other file. Fast, so it is also the bundle module's mutation suite.

The key case: `verify` on a tarball whose member was tampered with, while a clean copy of the same bundle
lies unpacked beside it, must check the tarball's own contents and fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from latentcast import bundle as reader
from latentcast.features import FEATURE_SPEC_VERSION
from latentcast.protocol import model_id_from_manifest
from latentcast.signing import TRUSTED_KEYS_ENV, set_policy

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "config.toml": b'[edge]\nmodel = "gesture"\n',
    "models/gesture/encoder.onnx": b"fp32 encoder bytes" * 10,
    "models/gesture/encoder.int8.onnx": b"int8 encoder bytes" * 7,
    "models/gesture/decoder.onnx": b"decoder bytes" * 9,
    "models/gesture/model_card.json": json.dumps({"classes": ["fist", "open"]}).encode(),
    "landmarks/hand_landmarker.task": b"task bytes",
    "landmarks/hand_landmark.onnx": b"onnx landmark fp32",
    "landmarks/hand_landmark.int8.onnx": b"onnx landmark int8",
    "landmarks/geometry.binarypb": b"canonical face",
}


@pytest.fixture(autouse=True)
def no_trust_list(tmp_path, monkeypatch):
    """No trusted keys configured: unsigned bundles load with a warning (latentcast.signing's rule)."""
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(tmp_path / "no_trusted_keys"))
    yield
    set_policy(None)  # the CLI's main() sets the process-wide policy


def write_bundle(where: Path, name: str = "latentcast-bundle-9.9.9", **manifest_extra) -> Path:
    root = where / name
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    manifest = {
        "format": "latentcast-bundle",
        "format_version": 1,
        "version": "9.9.9",
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "models": {"gesture": {"classes": 2}},
        "landmark_onnx": {
            "models": {
                "hand_landmark": {"fp32": "landmarks/hand_landmark.onnx", "int8": "landmarks/hand_landmark.int8.onnx"}
            },
            "geometry": "landmarks/geometry.binarypb",
        },
        "files": {rel: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for rel, d in FILES.items()},
    }
    manifest.update(manifest_extra)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


def tar_of(root: Path, tarball: Path, replace: dict[str, bytes] | None = None) -> Path:
    """A .tar.gz of `root` (one top folder), with some members' contents replaced on the way in."""
    replace = replace or {}
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            arcname = f"{root.name}/{rel}"
            if path.is_dir():
                tar.add(path, arcname, recursive=False)
                continue
            data = replace.get(rel, path.read_bytes())
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tarball


def test_verify_cli_checks_the_tarballs_own_members_not_the_clean_copy_beside_it(tmp_path, capsys):
    clean = write_bundle(tmp_path)  # the clean copy, unpacked beside the tarball under the name it would unpack to
    rel = "models/gesture/decoder.onnx"
    tampered = FILES[rel][:-1] + b"X"  # same size, other bytes
    tarball = tar_of(clean, tmp_path / "bundle.tar.gz", replace={rel: tampered})
    with pytest.raises(reader.BundleError, match=f"{rel} was modified"):
        reader.main(["verify", str(tarball)])
    assert reader.problems(clean, json.loads((clean / "manifest.json").read_text())) == []  # the copy is clean
    # and through the real CLI: one line naming the file, non-zero exit
    proc = subprocess.run(
        [sys.executable, "-m", "latentcast.bundle", "verify", str(tarball)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert proc.returncode != 0
    assert f"{rel} was modified" in proc.stderr and "Traceback" not in proc.stderr


def test_verify_cli_accepts_a_clean_tarball_even_with_a_tampered_copy_beside_it(tmp_path, capsys):
    clean = write_bundle(tmp_path / "src")
    tarball = tar_of(clean, tmp_path / "bundle.tar.gz")
    beside = write_bundle(tmp_path)  # same name as the tarball's top folder, then damaged
    (beside / "config.toml").write_bytes(b"tampered")
    assert reader.main(["verify", str(tarball)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok  {tarball}  version 9.9.9, {len(FILES)} files verified") and "models: gesture" in out
    assert (beside / "config.toml").read_bytes() == b"tampered"  # verify never unpacks over a folder


def test_verify_cli_on_a_directory(tmp_path, capsys):
    root = write_bundle(tmp_path)
    assert reader.main(["verify", str(root)]) == 0
    assert f"{len(FILES)} files verified" in capsys.readouterr().out
    (root / "landmarks/hand_landmarker.task").write_bytes(b"task bytez")  # same size
    with pytest.raises(reader.BundleError, match=r"landmarks/hand_landmarker\.task was modified"):
        reader.main(["verify", str(root)])


def test_every_kind_of_difference_is_listed_once_per_file(tmp_path):
    root = write_bundle(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    assert reader.problems(root, manifest) == []
    (root / "config.toml").write_bytes(FILES["config.toml"] + b"\n")  # size differs
    (root / "models/gesture/encoder.onnx").unlink()
    (root / "models/gesture/extra.onnx").write_bytes(b"swapped in")
    (root / "models/gesture/encoder.int8.engine").write_bytes(b"device built")  # never listed: fine
    (root / "models/gesture/encoder.int8.engine.json").write_bytes(b"{}")
    (root / "tensorrt.timing.cache").write_bytes(b"cache")
    (root / "signature.json").write_bytes(b"{}")  # not listed in the manifest by design
    assert reader.problems(root, manifest) == [
        "config.toml was modified (sha256 differs from manifest.json)",
        "models/gesture/encoder.onnx is missing",
        "models/gesture/extra.onnx is not listed in manifest.json",
    ]
    with pytest.raises(reader.BundleError, match=r"config.toml was modified .* \(and 2 more\): rebuild or re-copy"):
        reader.open_bundle(root)
    assert reader.open_bundle(root, verify=False).version == "9.9.9"


def test_file_entries_are_the_manifest_the_docs_describe(tmp_path):
    root = write_bundle(tmp_path)
    (root / "models/gesture/encoder.engine").write_bytes(b"device")
    (root / "signature.json").write_bytes(b"{}")
    entries = reader.file_entries(root)
    assert entries == json.loads((root / "manifest.json").read_text())["files"]
    assert [reader.device_built(n) for n in ("a/x.engine", "a/x.engine.json", "b.build.log", "engines.json")] == [
        True
    ] * 4
    assert not reader.device_built("models/gesture/encoder.onnx") and not reader.device_built("engine.onnx")


def test_bundle_accessors_name_the_files_the_docs_list(tmp_path):
    root = write_bundle(tmp_path)
    bundle = reader.open_bundle(root)
    assert bundle.version == "9.9.9" and bundle.models == ["gesture"] and bundle.trust
    assert bundle.feature_spec_version == FEATURE_SPEC_VERSION
    bundle.check_feature_spec()
    assert bundle.model_id == model_id_from_manifest((root / "manifest.json").read_bytes())
    assert bundle.model_for("hands") == "gesture" and bundle.model_for("face") is None
    with pytest.raises(reader.BundleError, match="unknown part 'feet'"):
        bundle.model_for("feet")
    assert bundle.encoder("gesture") == root / "models/gesture/encoder.int8.onnx"
    assert bundle.encoder("gesture", int8=False) == root / "models/gesture/encoder.onnx"
    assert bundle.decoder("gesture") == root / "models/gesture/decoder.onnx"
    assert bundle.model_card("gesture") == {"classes": ["fist", "open"]}
    with pytest.raises(reader.BundleError, match=r"has no expression model .*it has gesture"):
        bundle.decoder("expression")
    assert bundle.landmark_model("hand") == root / "landmarks/hand_landmarker.task"
    assert bundle.landmark_model("face") == root / "landmarks/face_landmarker.task"
    with pytest.raises(reader.BundleError, match="unknown landmark model 'toe'"):
        bundle.landmark_model("toe")
    assert bundle.has_landmark_onnx
    assert bundle.landmark_onnx("hand_landmark") == root / "landmarks/hand_landmark.onnx"
    assert bundle.landmark_onnx("hand_landmark", int8=True) == root / "landmarks/hand_landmark.int8.onnx"
    with pytest.raises(reader.BundleError, match="no ONNX landmark model 'palm'"):
        bundle.landmark_onnx("palm")
    assert bundle.landmark_geometry() == root / "landmarks/geometry.binarypb"
    assert bundle.config_path == root / "config.toml"


def test_a_bundle_without_landmark_onnx_says_so(tmp_path):
    bundle = reader.open_bundle(write_bundle(tmp_path, landmark_onnx={}), verify=False)
    assert not bundle.has_landmark_onnx
    with pytest.raises(reader.BundleError, match="no ONNX landmark models: use the mediapipe"):
        bundle.landmark_geometry()
    fp32_only = {"models": {"m": {"fp32": "landmarks/hand_landmark.onnx", "int8": None}}, "geometry": "g"}
    bundle = reader.open_bundle(write_bundle(tmp_path / "b", landmark_onnx=fp32_only), verify=False)
    assert bundle.landmark_onnx("m", int8=True) == bundle.root / "landmarks/hand_landmark.onnx"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"format": "other"}, "is format other v1, this reader knows latentcast-bundle v1"),
        ({"format_version": 2}, "is format latentcast-bundle v2"),
        ({"feature_spec_version": FEATURE_SPEC_VERSION + 1}, "was made for feature spec"),
    ],
)
def test_foreign_manifests_are_refused(tmp_path, edit, message):
    root = write_bundle(tmp_path, **edit)
    with pytest.raises(reader.UserError, match=message):
        reader.open_bundle(root).check_feature_spec()


def test_no_manifest_or_a_broken_one_is_one_line(tmp_path):
    with pytest.raises(reader.BundleError, match=r"has no manifest\.json"):
        reader.open_bundle(tmp_path)
    root = write_bundle(tmp_path)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(reader.BundleError, match="is not valid JSON"):
        reader.open_bundle(root)


def test_extract_unpacks_once_beside_the_tarball_and_refuses_escaping_members(tmp_path):
    clean = write_bundle(tmp_path / "src")
    tarball = tar_of(clean, tmp_path / "b.tar.gz")
    root = reader.extract(tarball)
    assert root == tmp_path / clean.name and (root / "config.toml").read_bytes() == FILES["config.toml"]
    assert reader.open_bundle(tarball).root == root  # open_bundle on a tarball unpacks beside it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch folder left
    for bad in ("latentcast-bundle-9.9.9/../other/x", "/abs/x", "second/x"):
        evil = tmp_path / "evil.tar.gz"
        with tarfile.open(evil, "w:gz") as tar:
            for name in ("latentcast-bundle-9.9.9/config.toml", bad):
                info = tarfile.TarInfo(name)
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(reader.BundleError):
            reader.extract(evil, tmp_path / "out")
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("latentcast-bundle-9.9.9/l")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(reader.BundleError, match="is a link or special file"):
        reader.extract(link, tmp_path / "out2")
    (tmp_path / "junk.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(reader.BundleError, match=r"is not a readable \.tar\.gz"):
        reader.extract(tmp_path / "junk.tar.gz", tmp_path / "out3")


def test_signed_bundles_against_a_trust_list_and_the_cli_trust_flags(tmp_path, capsys):
    from latentcast.signing import generate_keypair, sign_manifest

    keys = tmp_path / "keys"
    keys.mkdir()
    secret, public = generate_keypair(keys, "builder")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    root = write_bundle(tmp_path / "b")
    # unsigned, with a trust list: refused by the CLI unless --allow-unsigned
    (trusted / public.name).write_bytes(public.read_bytes())
    with pytest.raises(reader.UserError, match="is unsigned"):
        reader.main(["verify", str(root), "--trusted-keys", str(trusted)])
    assert reader.main(["verify", str(root), "--trusted-keys", str(trusted), "--allow-unsigned"]) == 0
    assert "allowed: --allow-unsigned" in capsys.readouterr().out
    sign_manifest(root, secret)
    assert reader.main(["verify", str(root), "--trusted-keys", str(trusted)]) == 0
    assert "(trusted)" in capsys.readouterr().out  # the signature was checked on the manifest's own bytes
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["version"] = "9.9.10"  # a re-written manifest no longer matches its signature
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(reader.UserError, match=r"does not match manifest\.json"):
        reader.main(["verify", str(root), "--trusted-keys", str(trusted)])


def test_verify_cli_usage_and_report(tmp_path, capsys):
    with pytest.raises(SystemExit):
        reader.main(["--help"])
    usage = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert usage.startswith("usage: python -m latentcast.bundle") and "{verify}" in usage
    assert reader.__doc__.splitlines()[0] in usage and "bundle directory or .tar.gz" in usage
    with pytest.raises(SystemExit):
        reader.main(["check", str(tmp_path)])  # only "verify" is an action
    assert "invalid choice: 'check'" in capsys.readouterr().err
    root = write_bundle(tmp_path, models={"gesture": {}, "expression": {}})
    assert reader.main(["verify", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok  {root}  version 9.9.9") and out.rstrip().endswith("models: expression, gesture")


def test_the_first_issue_and_how_many_more(tmp_path):
    root = write_bundle(tmp_path)
    (root / "config.toml").write_bytes(b"changed")
    with pytest.raises(
        reader.BundleError, match=r"config\.toml was modified \(sha256 differs from manifest\.json\): rebuild"
    ):
        reader.open_bundle(root)
    (root / "extra.bin").write_bytes(b"x")
    with pytest.raises(reader.BundleError, match=r"manifest\.json\) \(and 1 more\): rebuild or re-copy the bundle$"):
        reader.open_bundle(root)


def test_a_manifest_without_optional_blocks(tmp_path):
    root = write_bundle(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    bare = {k: v for k, v in manifest.items() if k not in ("models", "landmark_onnx", "files")}
    bundle = reader.Bundle(root, bare)
    assert bundle.models == [] and bundle.model_for("hands") is None and not bundle.has_landmark_onnx
    with pytest.raises(reader.BundleError, match=r"has no gesture model \(it has \)"):
        bundle.encoder("gesture")
    with pytest.raises(reader.BundleError, match="has no ONNX landmark model 'hand_landmark'"):
        bundle.landmark_onnx("hand_landmark")
    assert reader.problems(root, bare) == [f"{rel} is not listed in manifest.json" for rel in sorted(FILES)]
    two = reader.Bundle(root, {**manifest, "models": {"gesture": {}, "other": {}}})
    with pytest.raises(reader.BundleError, match=r"\(it has gesture, other\): rebuild it$"):
        two.decoder("expression")


def test_error_messages_name_the_choices_and_the_fix(tmp_path):
    root = write_bundle(tmp_path)
    bundle = reader.open_bundle(root)
    with pytest.raises(reader.BundleError, match=r"^unknown part 'feet': use one of face, hands$"):
        bundle.model_for("feet")
    with pytest.raises(reader.BundleError, match=r"^unknown landmark model 'toe': use one of face, hand$"):
        bundle.landmark_model("toe")
    with pytest.raises(
        reader.BundleError, match=r"rebuild it without --no_landmark_onnx or use the mediapipe landmark"
    ):
        bundle.landmark_onnx("palm")
    other = reader.Bundle(root, {**bundle.manifest, "feature_spec_version": FEATURE_SPEC_VERSION + 1})
    with pytest.raises(
        reader.UserError,
        match=rf"^bundle {root} was made for feature spec .*: rebuild the bundle or update latentcast$",
    ):
        other.check_feature_spec()


def test_tarballs_by_suffix_only_and_into_a_new_nested_folder(tmp_path):
    clean = write_bundle(tmp_path / "src")
    tgz = tar_of(clean, tmp_path / "b.tgz")
    assert reader.open_bundle(tgz).version == "9.9.9"  # .tgz is a tarball too
    folder_named_like_a_tarball = write_bundle(tmp_path / "dirs", name="odd.tar.gz")
    assert reader.open_bundle(folder_named_like_a_tarball).root == folder_named_like_a_tarball  # a folder is a folder
    nested = tmp_path / "a" / "b" / "c"
    assert reader.extract(tgz, nested) == nested / clean.name and (nested / clean.name / "config.toml").is_file()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["latentcast-bundle-9.9.9/config.toml", "second/x"], r"should hold one bundle directory, it holds \["),
        (["../x"], r"should hold one bundle directory, it holds \['\.\.'\]"),
        (["/x"], r"should hold one bundle directory, it holds \['/'\]"),
        (["latentcast-bundle-9.9.9/config.toml", "latentcast-bundle-9.9.9/a\\..\\..\\x"], "points outside the bundle"),
        (["latentcast-bundle-9.9.9/config.toml", "latentcast-bundle-9.9.9/a/../../x"], "points outside the bundle"),
    ],
)
def test_tarball_layouts_that_are_refused(tmp_path, names, message):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(reader.BundleError, match=message):
        reader.extract(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
