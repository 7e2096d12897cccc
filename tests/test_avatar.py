"""The generated default avatar is a valid VRM (1.0 and 0.x), and `renderer.avatar` reads any VRM's rest pose.

Checked on the files as written (pygltflib reads them back): glTF binary structure, the VRM
extension's humanoid (all 55 bones, a proper tree), expressions bound to real morph targets that
move the right vertices, skinning joints, and reproducible bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pygltflib
import pytest

from latentcast.errors import UserError
from renderer.avatar import default_skeleton, load_avatar
from renderer.bones import ALL_BONES, FROM_VRM0, FROM_VRM1
from renderer.default_avatar import EXPRESSIONS, write

VRM1_PRESETS = {"blinkLeft", "blinkRight", "aa", "ih", "ou", "ee", "oh", "happy", "surprised", "neutral"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("vrm")
    return {"1.0": write(d / "a.vrm", "1.0"), "0.x": write(d / "b.vrm", "0.x")}


def _accessor(gltf, index) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    blob = gltf.binary_blob()
    dtype = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_SHORT: np.uint16, pygltflib.UNSIGNED_INT: np.uint32}
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    raw = np.frombuffer(blob, dtype[acc.componentType], acc.count * width, view.byteOffset + (acc.byteOffset or 0))
    return raw.reshape(acc.count, width)


def test_vrm1_file_is_a_glb_with_the_full_humanoid_and_expressions(files):
    raw = files["1.0"].read_bytes()
    assert raw[:4] == b"glTF" and int.from_bytes(raw[4:8], "little") == 2
    gltf = pygltflib.GLTF2.load_binary(str(files["1.0"]))
    vrm = gltf.extensions["VRMC_vrm"]
    assert gltf.extensionsUsed == ["VRMC_vrm"] and vrm["specVersion"] == "1.0"
    bones = {FROM_VRM1[k]: v["node"] for k, v in vrm["humanoid"]["humanBones"].items()}
    assert set(bones) == set(ALL_BONES) and len(bones) == 55
    assert "leftThumbMetacarpal" in vrm["humanoid"]["humanBones"]  # VRM 1.0 thumb naming
    # Every bone node reachable from the scene root exactly once (a tree), and skinned.
    children = [c for n in gltf.nodes for c in (n.children or [])]
    assert len(children) == len(set(children))
    assert set(bones.values()) <= set(gltf.skins[0].joints)
    presets = vrm["expressions"]["preset"]
    assert set(presets) >= VRM1_PRESETS
    face_node = gltf.nodes[presets["aa"]["morphTargetBinds"][0]["node"]]
    face = gltf.meshes[face_node.mesh]
    assert all(len(p.targets) == len(EXPRESSIONS) for p in face.primitives)
    for name, expression in presets.items():
        for bind in expression["morphTargetBinds"]:
            moved = max(np.abs(_accessor(gltf, p.targets[bind["index"]]["POSITION"])).max() for p in face.primitives)
            assert moved > 0.002, name  # the morph target really moves something (millimetres)
    assert presets["neutral"]["morphTargetBinds"] == []


def test_vrm0_file_faces_minus_z_and_has_blendshape_groups(files):
    gltf = pygltflib.GLTF2.load_binary(str(files["0.x"]))
    vrm = gltf.extensions["VRM"]
    bones = {FROM_VRM0[b["bone"]]: b["node"] for b in vrm["humanoid"]["humanBones"]}
    assert set(bones) == set(ALL_BONES)
    left_hand = gltf.nodes[bones["LeftHand"]]
    # VRM 0.x avatars face -Z: their left hand is at -X; the nose (head front) at -Z.
    x = sum(gltf.nodes[bones[b]].translation[0] for b in ("LeftShoulder", "LeftUpperArm", "LeftLowerArm"))
    assert x + left_hand.translation[0] < -0.3
    presets = {g["presetName"] for g in vrm["blendShapeMaster"]["blendShapeGroups"]}
    assert {"blink_l", "blink_r", "a", "i", "u", "e", "o", "joy", "neutral"} <= presets
    groups = {g["name"]: g for g in vrm["blendShapeMaster"]["blendShapeGroups"]}
    assert groups["Blink_L"]["binds"][0]["weight"] == 100.0  # 0.x weights are 0..100
    assert len(vrm["materialProperties"]) == len(gltf.materials)


def test_files_are_reproducible(files, tmp_path):
    again = write(tmp_path / "again.vrm", "1.0")
    assert again.read_bytes() == files["1.0"].read_bytes()


def test_blink_closes_only_its_own_eye(files):
    """blinkLeft squashes the vertices at +X (the avatar's left in VRM 1.0), none at -X."""
    gltf = pygltflib.GLTF2.load_binary(str(files["1.0"]))
    vrm = gltf.extensions["VRMC_vrm"]
    bind = vrm["expressions"]["preset"]["blinkLeft"]["morphTargetBinds"][0]
    face = gltf.meshes[gltf.nodes[bind["node"]].mesh]
    eyes = face.primitives[0]
    pos = _accessor(gltf, eyes.attributes.POSITION)
    delta = _accessor(gltf, eyes.targets[bind["index"]]["POSITION"])
    moving = np.abs(delta).max(axis=1) > 1e-5
    assert moving.any() and (pos[moving, 0] > 0).all()


def test_reader_gives_the_same_rest_pose_for_both_versions(files):
    d = default_skeleton()
    for version, path in files.items():
        s = load_avatar(path)
        assert s.version == version and set(s.bones) == set(ALL_BONES)
        for name in ALL_BONES:
            np.testing.assert_allclose(s.bones[name].world_position, d.bones[name].world_position, atol=1e-6)
        assert s.has_presets() and not s.has_perfect_sync()
        assert s.bones["LeftIndexProximal"].parent == "LeftHand"


def test_reader_refuses_what_is_not_a_humanoid_vrm(files, tmp_path):
    gltf = pygltflib.GLTF2.load_binary(str(files["1.0"]))
    gltf.extensions = {}
    gltf.save_binary(str(tmp_path / "plain.glb"))
    with pytest.raises(UserError, match="no VRM extension"):
        load_avatar(tmp_path / "plain.glb")
    gltf = pygltflib.GLTF2.load_binary(str(files["1.0"]))
    del gltf.extensions["VRMC_vrm"]["humanoid"]["humanBones"]["leftHand"]
    gltf.save_binary(str(tmp_path / "handless.vrm"))
    with pytest.raises(UserError, match=r"LeftHand"):
        load_avatar(tmp_path / "handless.vrm")
    (tmp_path / "text.vrm").write_text(json.dumps({"asset": {}}))
    with pytest.raises(UserError, match="not a glTF/VRM"):
        load_avatar(tmp_path / "text.vrm")


def test_make_avatar_cli_writes_both_versions(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "scripts/make_avatar.py", "--out", str(tmp_path)], cwd=root,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load_avatar(tmp_path / "latentcast-default.vrm").version == "1.0"
    assert load_avatar(tmp_path / "latentcast-default-vrm0.vrm").version == "0.x"
