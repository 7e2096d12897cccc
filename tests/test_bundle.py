"""The deploy bundle: build, verify round trip (directory and tarball), tamper and loss detection."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _export_fixtures import gesture_model_dir

from calibration.sets import hand_split
from export import bundle as bundle_writer
from latentcast import bundle as bundle_reader
from latentcast.errors import UserError, run_cli
from latentcast.inference import DecoderSession, EncoderSession


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    model_dir = gesture_model_dir(root / "gesture")
    directory, tarball = bundle_writer.build(root / "out", {"gesture": model_dir}, version="1.2.3", calib_rows=256)
    return {"root": root, "model_dir": model_dir, "dir": directory, "tar": tarball}


@pytest.fixture
def copy(built, tmp_path):
    """A private copy to damage."""
    return shutil.copytree(built["dir"], tmp_path / built["dir"].name)


def test_bundle_holds_everything_and_verifies(built):
    bundle = bundle_reader.open_bundle(built["dir"])
    assert built["dir"].name == "latentcast-bundle-1.2.3" and bundle.version == "1.2.3"
    from latentcast.features import FEATURE_SPEC_VERSION

    assert bundle.feature_spec_version == FEATURE_SPEC_VERSION
    expected = {
        "config.toml",
        "landmarks/face_landmarker.task",
        "landmarks/hand_landmarker.task",
        "models/gesture/encoder.onnx",
        "models/gesture/encoder.int8.onnx",
        "models/gesture/decoder.onnx",
        "models/gesture/model_card.json",
        "models/gesture/calibration.json",
    }
    from export.landmark_models import shipped_files

    expected |= {f"landmarks/{name}" for name in shipped_files()}  # the edge's own landmark models
    assert set(bundle.manifest["files"]) == expected
    assert set(bundle.manifest["tools"]) >= {"python", "torch", "onnx", "onnxruntime", "latentcast"}
    entry = bundle.manifest["models"]["gesture"]
    assert entry["int8"]["qdq"]["types"] == ["int8"]
    assert entry["int8"]["on_calibration_rows"]["class_agreement"] >= 0.97
    calibration = json.loads((built["dir"] / "models/gesture/calibration.json").read_text())
    assert calibration["sources"][0]["asset"].endswith("baron105_11_gestures/keypoint.csv")


def test_bundle_models_run_from_the_bundle(built):
    bundle = bundle_reader.open_bundle(built["tar"])  # unpacked beside the tarball, then verified
    x = hand_split()[1].x[:4]
    y, z = EncoderSession(bundle.encoder("gesture", int8=True))(x)
    y32, _ = EncoderSession(bundle.encoder("gesture", int8=False))(x)
    assert y.shape == (4, len(bundle.model_card("gesture")["classes"]))
    assert np.array_equal(y.argmax(1), y32.argmax(1))
    assert DecoderSession(bundle.decoder("gesture"))(y, z).shape == (4, 42)
    with pytest.raises(UserError, match="no expression model"):
        bundle.encoder("expression")


def test_verify_cli_accepts_directory_and_tarball(built, capsys):
    assert run_cli(bundle_writer.main, ["verify", str(built["dir"])]) == 0
    assert run_cli(bundle_writer.main, ["verify", str(built["tar"])]) == 0
    assert capsys.readouterr().out.count("8 files verified") == 2


def test_tampered_file_is_named(copy, capsys):
    target = copy / "models/gesture/encoder.int8.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    target.write_bytes(bytes(data))
    with pytest.raises(bundle_reader.BundleError, match=r"models/gesture/encoder\.int8\.onnx was modified"):
        bundle_reader.open_bundle(copy)
    assert run_cli(bundle_reader.main, ["verify", str(copy)]) == 2
    assert "encoder.int8.onnx was modified" in capsys.readouterr().err


def test_missing_and_unlisted_files_are_named(copy):
    (copy / "landmarks/hand_landmarker.task").unlink()
    with pytest.raises(bundle_reader.BundleError, match=r"landmarks/hand_landmarker\.task is missing"):
        bundle_reader.open_bundle(copy)
    shutil.copyfile(copy / "landmarks/face_landmarker.task", copy / "landmarks/hand_landmarker.task")
    with pytest.raises(bundle_reader.BundleError, match=r"hand_landmarker\.task was modified"):
        bundle_reader.open_bundle(copy)
    (copy / "landmarks/hand_landmarker.task").unlink()
    (copy / "models/gesture/extra.onnx").write_bytes(b"not in the manifest")
    with pytest.raises(bundle_reader.BundleError, match=r"missing \(and 1 more\)"):
        bundle_reader.open_bundle(copy)


def test_unlisted_file_alone_is_named(copy):
    (copy / "models/gesture/extra.onnx").write_bytes(b"swapped in")
    with pytest.raises(bundle_reader.BundleError, match=r"models/gesture/extra\.onnx is not listed"):
        bundle_reader.open_bundle(copy)


def test_corrupt_tarball_and_foreign_manifest_are_user_errors(copy, tmp_path):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(bundle_reader.BundleError, match="not a readable"):
        bundle_reader.open_bundle(bad)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle_reader.BundleError, match="v99"):
        bundle_reader.open_bundle(copy)


def test_model_trained_on_other_features_is_refused(built, tmp_path):
    model_dir = shutil.copytree(built["model_dir"], tmp_path / "old")
    card = json.loads((model_dir / "model_card.json").read_text())
    card["feature_spec_version"] = -1
    (model_dir / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="feature spec -1"):
        bundle_writer.build(tmp_path / "out", {"gesture": model_dir}, version="x")
    assert not (tmp_path / "out" / "latentcast-bundle-x").exists()


def test_engines_built_on_the_device_do_not_break_verification(copy):
    (copy / "models/gesture/encoder.int8.engine").write_bytes(b"built by export.tensorrt on the Jetson")
    (copy / "tensorrt.timing.cache").write_bytes(b"cache")
    assert bundle_reader.open_bundle(copy).version == "1.2.3"
    (copy / "models/gesture/encoder.int8.onnx").write_bytes(b"swapped")
    with pytest.raises(bundle_reader.BundleError, match=r"encoder\.int8\.onnx was modified"):
        bundle_reader.open_bundle(copy)


def test_build_cli_with_a_saved_calibration_set(built, tmp_path, capsys):
    from calibration.sets import hand_set, save_set

    calib = save_set(hand_set(rows=64, seed=3), tmp_path / "calib" / "gesture")
    args = ["build", "--gesture", str(built["model_dir"]), "--calib_gesture", str(calib), "--method", "percentile"]
    assert run_cli(bundle_writer.main, [*args, "--version", "cli", "--out", str(tmp_path)]) == 0
    assert "INT8 agrees with FP32" in capsys.readouterr().out
    bundle = bundle_reader.open_bundle(tmp_path / "latentcast-bundle-cli.tar.gz")
    assert bundle.manifest["models"]["gesture"]["int8"]["method"] == "percentile"
    assert json.loads((bundle.root / "models/gesture/calibration.json").read_text())["rows"] == 128  # 64 a person
    assert run_cli(bundle_writer.main, [*args, "--version", "cli", "--out", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_device_side_modules_never_import_torch(built):
    """The Jetson and the renderer host read bundles, run encoders and apply neutral calibration without torch."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from latentcast.bundle import open_bundle\n"
        "from latentcast.inference import EncoderSession\n"
        "from latentcast.neutral import NeutralCalibration\n"
        f"b = open_bundle({str(built['dir'])!r})\n"
        "y, z = EncoderSession(b.encoder('gesture'))(np.zeros((1, 42), np.float32))\n"
        "NeutralCalibration(np.zeros(3), np.ones(3), np.zeros(3)).apply(np.ones(3))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok', y.shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "ok (1, 11)" in done.stdout


def test_bundle_identity_is_computed_in_one_place(built, copy):
    from latentcast.protocol import model_id_from_manifest

    bundle = bundle_reader.open_bundle(built["dir"])
    assert bundle.model_id == model_id_from_manifest((built["dir"] / "manifest.json").read_bytes())
    assert len(bundle.model_id) == 8
    assert bundle.model_for("hands") == "gesture" and bundle.model_for("face") is None  # gesture-only bundle
    with pytest.raises(bundle_reader.BundleError, match="unknown part 'feet'"):
        bundle.model_for("feet")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["version"] = "other"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert bundle_reader.open_bundle(copy).model_id != bundle.model_id  # another manifest, another model


def test_edge_and_renderer_refuse_a_bundle_of_another_feature_spec(built, copy):
    from edge.stages import BundleEncoders
    from latentcast.features import FEATURE_SPEC_VERSION
    from renderer.decode import BundleDecoders

    assert BundleDecoders.from_bundle(built["dir"]).hand.name == "gesture"
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["feature_spec_version"] = FEATURE_SPEC_VERSION + 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for load in (BundleDecoders.from_bundle, BundleEncoders):
        with pytest.raises(UserError, match=f"feature spec {FEATURE_SPEC_VERSION + 1}, this code computes spec"):
            load(copy)
