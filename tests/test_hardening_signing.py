"""Issue 11, item 4: Ed25519-signed bundles, a device-side trust list, verified device-built engines.

Each attack of the issue is reproduced on a real signed bundle: files rewritten together with their
manifest hashes (a face .task replaced by the hand .task, edited model metadata, a removed file and
its entry). With a trust list configured every one is refused with one line, through the CLIs.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import renderer_support as support
from helpers import one_line_error

from latentcast import bundle as reader
from latentcast import signing

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=full_env)  # fmt: skip


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    result = cli("export.sign", "keygen", "--out", str(folder), "--name", "builder")
    assert result.returncode == 0, result.stderr
    again = cli("export.sign", "keygen", "--out", str(folder), "--name", "builder")
    one_line_error(again, "already exists")  # never overwrite a key
    signing.generate_keypair(folder, "stranger")
    trusted = folder / "trusted"
    result = cli("export.sign", "trust", str(folder / "builder.pub"), "--trusted-keys", str(trusted))
    assert result.returncode == 0, result.stderr
    return {"secret": folder / "builder.ed25519", "public": folder / "builder.pub", "trusted": trusted,
            "stranger": folder / "stranger.ed25519"}  # fmt: skip


@pytest.fixture(scope="module")
def signed_source(tmp_path_factory, keys) -> Path:
    root = support.make_bundle(tmp_path_factory.mktemp("signed") / "latentcast-bundle-signed")
    for kind, rel in reader.LANDMARK_FILES.items():  # stand-ins for the MediaPipe .task files: bytes that differ
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(f"{kind} landmarker task".encode() * 50)
    manifest = json.loads((root / reader.MANIFEST).read_text())
    manifest["files"] = reader.file_entries(root)
    (root / reader.MANIFEST).write_text(json.dumps(manifest, indent=2))
    result = cli("export.sign", "sign", str(root), "--key", str(keys["secret"]))
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def signed(signed_source, tmp_path) -> Path:
    return shutil.copytree(signed_source, tmp_path / signed_source.name)


def rehash(root: Path, drop: str | None = None) -> None:
    """What an attacker does: rewrite manifest.json so every sha256 matches the modified files."""
    manifest = json.loads((root / reader.MANIFEST).read_text())
    manifest["files"] = reader.file_entries(root)
    manifest["files"].pop(drop, None)
    (root / reader.MANIFEST).write_text(json.dumps(manifest, indent=2))


def verify(root: Path, keys: dict, *extra: str) -> subprocess.CompletedProcess:
    return cli("latentcast.bundle", "verify", str(root), "--trusted-keys", str(keys["trusted"]), *extra)


def test_keygen_writes_a_private_secret_and_an_ssh_public_line(keys):
    assert stat.S_IMODE(keys["secret"].stat().st_mode) == 0o600
    assert keys["public"].read_text().startswith("ssh-ed25519 ")
    assert (keys["trusted"] / "builder.pub").read_bytes() == keys["public"].read_bytes()


def test_signed_bundle_verifies_against_the_trust_list(signed, keys):
    result = verify(signed, keys)
    assert result.returncode == 0, result.stderr
    assert f"signed by {signing.public_key_id(keys['public'])} (trusted)" in result.stdout


def test_face_task_replaced_by_the_hand_task_with_rewritten_hashes_is_refused(signed, keys):
    face, hand = (signed / reader.LANDMARK_FILES[k] for k in ("face", "hand"))
    face.write_bytes(hand.read_bytes())
    rehash(signed)
    assert reader.problems(signed, json.loads((signed / reader.MANIFEST).read_text())) == []  # hashes alone pass
    one_line_error(verify(signed, keys), "does not match manifest.json")
    one_line_error(verify(signed, keys, "--allow-unsigned"), "does not match")  # never allowed, even for dev


def test_edited_metadata_is_refused_through_the_renderer_cli(signed, keys, tmp_path):
    card_path = signed / "models/gesture/model_card.json"
    card = json.loads(card_path.read_text())
    card["classes"] = list(reversed(card["classes"]))  # every gesture label now lies
    card_path.write_text(json.dumps(card))
    rehash(signed)
    result = cli("renderer.run", "--bundle", str(signed), "--trusted-keys", str(keys["trusted"]), "--frames", "1",
                 "--out", str(tmp_path / "frames"))  # fmt: skip
    one_line_error(result, "does not match manifest.json")


def test_removed_file_and_entry_is_refused(signed, keys):
    (signed / "models/expression/decoder.onnx").unlink()
    rehash(signed, drop="models/expression/decoder.onnx")
    one_line_error(verify(signed, keys), "does not match manifest.json")


def test_unsigned_and_untrusted_bundles_are_refused_unless_allowed(signed, keys, tmp_path):
    (signed / signing.SIGNATURE).unlink()
    one_line_error(verify(signed, keys), "is unsigned", "--allow-unsigned")
    allowed = verify(signed, keys, "--allow-unsigned")
    assert allowed.returncode == 0 and "LOADING AN UNTRUSTED BUNDLE" in allowed.stderr
    signing.sign_manifest(signed, keys["stranger"])
    one_line_error(verify(signed, keys), "not a trusted key")


def test_without_a_trust_list_bundles_load_with_a_warning(signed, tmp_path):
    (signed / signing.SIGNATURE).unlink()
    env = {signing.TRUSTED_KEYS_ENV: str(tmp_path / "no-such-folder")}
    result = cli("latentcast.bundle", "verify", str(signed), env=env)
    assert result.returncode == 0, result.stderr
    assert "unsigned (no trust list)" in result.stdout and "not checked" in result.stderr
    # The environment variable alone configures trust (how a systemd unit or a demo sets it).
    keys_dir = tmp_path / "keys"
    signing.generate_keypair(keys_dir, "someone")
    one_line_error(cli("latentcast.bundle", "verify", str(signed), env={signing.TRUSTED_KEYS_ENV: str(keys_dir)}),
                   "is unsigned")  # fmt: skip


def test_signed_tarball_round_trip(signed, keys, tmp_path):
    from export.sign import pack

    tarball = tmp_path / "dist" / f"{signed.name}.tar.gz"
    tarball.parent.mkdir()
    pack(signed, tarball)
    bundle = reader.open_bundle(tarball, trust=signing.TrustPolicy(keys["trusted"]))
    assert bundle.trust.endswith("(trusted)")


def _tiny_encoder(path: Path, width: int = 4) -> None:
    """features [N, 4] -> y = softmax(x W1) [N, 3], z = x W2 [N, 2]: the encoder contract, nothing more."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((width, 3)).astype(np.float32), "W1"),
             numpy_helper.from_array(rng.standard_normal((width, 2)).astype(np.float32), "W2")]  # fmt: skip
    nodes = [helper.make_node("MatMul", ["features", "W1"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
             helper.make_node("MatMul", ["features", "W2"], ["z"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "encoder", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])], initializer=inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_device_built_engine_is_loaded_only_when_its_device_manifest_matches(tmp_path, monkeypatch, caplog):
    """No GPU or TensorRT here: the engine bytes and the TensorRT runner are stand-ins; the check is real."""
    from edge import stages

    onnx_path = tmp_path / "encoder.int8.onnx"
    _tiny_encoder(onnx_path)
    engine = onnx_path.with_suffix(".engine")
    engine.write_bytes(b"serialized engine stand-in (no TensorRT on this machine)")
    loaded = []

    class FakeTensorRTEncoder:  # what would deserialize the engine on a Jetson
        def __init__(self, path):
            loaded.append(path)

    monkeypatch.setattr(stages, "TensorRTEncoder", FakeTensorRTEncoder)
    runner = stages._encoder_runner(onnx_path, ["cpu"])  # no manifest: refused, ONNX runs
    assert not loaded and "NOT loading TensorRT engine" in caplog.text and "no device manifest" in caplog.text
    y, z = runner(np.ones((2, 4), np.float32))
    assert y.shape == (2, 3) and z.shape == (2, 2)
    signing.write_engine_manifest(engine, onnx_path)  # what export.tensorrt writes after a build
    assert reader.device_built("models/gesture/encoder.int8.engine.json")
    assert isinstance(stages._encoder_runner(onnx_path, ["cpu"]), FakeTensorRTEncoder) and loaded == [engine]
    engine.write_bytes(b"swapped engine")
    caplog.clear()
    stages._encoder_runner(onnx_path, ["cpu"])
    assert len(loaded) == 1 and "modified after it was built" in caplog.text
    signing.write_engine_manifest(engine, onnx_path)
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")  # the bundle was updated, the engine is stale
    with pytest.raises(signing.SignatureError, match="built from another"):
        signing.verify_engine(engine, onnx_path)


@pytest.mark.slow
def test_export_bundle_build_signs_with_the_given_key(tmp_path, keys):
    from _export_fixtures import gesture_model_dir

    from export import bundle as writer

    model_dir = gesture_model_dir(tmp_path / "gesture")
    root, tarball = writer.build(tmp_path / "out", {"gesture": model_dir}, version="signed", calib_rows=64,
                                 sign_key=keys["secret"])  # fmt: skip
    assert (root / signing.SIGNATURE).is_file()
    result = verify(tarball, keys)
    assert result.returncode == 0 and "(trusted)" in result.stdout, result.stderr
    with pytest.raises(Exception, match="not found"):
        writer.build(tmp_path / "out", {"gesture": model_dir}, version="x", sign_key=tmp_path / "missing.ed25519")
    assert not (tmp_path / "out" / "latentcast-bundle-x").exists()
