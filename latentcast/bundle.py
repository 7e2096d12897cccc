"""Read and verify a deploy bundle, torch-free (the Jetson and the renderer host run this).

Layout (written by `python -m export.bundle build`, described in docs/EXPORT.md)::

    <bundle>/manifest.json                      sha256 + size of every other file, tool versions,
                                                feature spec version, bundle version
    <bundle>/signature.json                     optional Ed25519 signature over manifest.json (latentcast.signing)
    <bundle>/config.toml                        which files the edge and renderer load
    <bundle>/models/<name>/encoder.onnx         FP32, name in {gesture, expression}
    <bundle>/models/<name>/encoder.int8.onnx    symmetric QDQ INT8 (TensorRT explicit quantization)
    <bundle>/models/<name>/decoder.onnx         FP32 (the renderer reconstructs features with it)
    <bundle>/models/<name>/model_card.json
    <bundle>/landmarks/{face_landmarker.task, hand_landmarker.task}
    <bundle>/landmarks/<name>.onnx, <name>.int8.onnx, geometry_pipeline_metadata_landmarks.binarypb
                                                the edge's own landmark models (export.landmark_models;
                                                absent in a bundle built with --no_landmark_onnx)

Verification fails with a message naming the first bad file: missing, tampered (sha256 or size
differs) or not listed in the manifest (an unlisted file could be swapped in unnoticed). The one
exception is what the device builds itself from verified files (`python -m export.tensorrt BUNDLE`
writes `models/<name>/encoder[.int8].engine` beside the ONNX it came from, plus build logs and a
timing cache): those are specific to that GPU and TensorRT version, so they cannot be in the manifest.

    python -m latentcast.bundle verify BUNDLE   (a directory or a .tar.gz)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from latentcast.assets import sha256_of
from latentcast.errors import UserError, run_cli
from latentcast.features import check_feature_spec
from latentcast.protocol import model_id_from_manifest
from latentcast.signing import SIGNATURE, TrustPolicy, add_trust_arguments, set_trust_from_args
from latentcast.signing import check_bundle as check_signature

MANIFEST = "manifest.json"
FORMAT = "latentcast-bundle"
FORMAT_VERSION = 1
MODEL_NAMES = ("gesture", "expression")
PART_MODELS = {"face": "expression", "hands": "gesture"}  # which model encodes which tracked part
# made on the device; "*.engine.json" is each engine's device-local manifest (latentcast.signing.verify_engine)
DEVICE_BUILT = ("*.engine", "*.engine.json", "*.build.log", "tensorrt.timing.cache", "engines.json")
LANDMARK_FILES = {"face": "landmarks/face_landmarker.task", "hand": "landmarks/hand_landmarker.task"}
LANDMARK_ONNX = "landmark_onnx"  # manifest key: {"models": {name: {"fp32", "int8" (or None), ...}}, "geometry"}


class BundleError(UserError):
    """A bundle is incomplete, modified or of an unknown format."""


def file_entries(root: Path) -> dict[str, dict]:
    """{relative posix path: {"sha256", "bytes"}} for every file under `root` except the manifest."""
    entries = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in (MANIFEST, SIGNATURE) and not device_built(rel):
            entries[rel] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    return entries


def problems(root: Path, manifest: dict) -> list[str]:
    """Every way `root` differs from its manifest, one line per file (empty: the bundle is intact)."""
    listed = manifest.get("files", {})
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST, SIGNATURE}
    issues = []
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            issues.append(f"{rel} is missing")
        elif path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]:
            issues.append(f"{rel} was modified (sha256 differs from manifest.json)")
    unlisted = [rel for rel in sorted(found - set(listed)) if not device_built(rel)]
    issues += [f"{rel} is not listed in manifest.json" for rel in unlisted]
    return issues


def device_built(rel: str) -> bool:
    """True for files the device derives from the bundle (TensorRT engines and their logs), never shipped."""
    from fnmatch import fnmatch

    return any(fnmatch(Path(rel).name, pattern) for pattern in DEVICE_BUILT)


@dataclass
class Bundle:
    """A verified bundle directory and its manifest; paths to what the edge and renderer load."""

    root: Path
    manifest: dict
    trust: str = ""  # what the signature check found (latentcast.signing.check_bundle), for reports

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def feature_spec_version(self):
        return self.manifest.get("feature_spec_version")

    @property
    def models(self) -> list[str]:
        return sorted(self.manifest.get("models", {}))

    @property
    def model_id(self) -> bytes:
        """The id every latent message carries: sha256 of this manifest's bytes, first 8 bytes."""
        return model_id_from_manifest((self.root / MANIFEST).read_bytes())

    def model_for(self, part: str) -> str | None:
        """The model that encodes `part` ("face" or "hands"), or None when this bundle has none."""
        if part not in PART_MODELS:
            raise BundleError(f"unknown part {part!r}: use one of {', '.join(PART_MODELS)}")
        name = PART_MODELS[part]
        return name if name in self.manifest.get("models", {}) else None

    def check_feature_spec(self) -> None:
        """Refuse a bundle built for other feature vectors (the edge encodes, the renderer decodes them)."""
        check_feature_spec(self.feature_spec_version, f"bundle {self.root}", "rebuild the bundle or update latentcast")

    def _model_file(self, name: str, filename: str) -> Path:
        if name not in self.manifest.get("models", {}):
            raise BundleError(f"bundle {self.root} has no {name} model (it has {', '.join(self.models)}): rebuild it")
        return self.root / "models" / name / filename

    def encoder(self, name: str, int8: bool = True) -> Path:
        return self._model_file(name, "encoder.int8.onnx" if int8 else "encoder.onnx")

    def decoder(self, name: str) -> Path:
        return self._model_file(name, "decoder.onnx")

    def model_card(self, name: str) -> dict:
        return json.loads(self._model_file(name, "model_card.json").read_text())

    def landmark_model(self, kind: str) -> Path:
        if kind not in LANDMARK_FILES:
            raise BundleError(f"unknown landmark model {kind!r}: use one of {', '.join(LANDMARK_FILES)}")
        return self.root / LANDMARK_FILES[kind]

    @property
    def has_landmark_onnx(self) -> bool:
        """True when the bundle carries the converted landmark models (the edge's `onnx` backend)."""
        return bool(self.manifest.get(LANDMARK_ONNX, {}).get("models"))

    def landmark_onnx(self, name: str, int8: bool = False) -> Path:
        """A converted landmark model: its INT8 copy when asked for and shipped, else FP32 (the manifest says why)."""
        entry = self.manifest.get(LANDMARK_ONNX, {}).get("models", {}).get(name)
        if entry is None:
            raise BundleError(
                f"bundle {self.root} has no ONNX landmark model {name!r}: rebuild it without --no_landmark_onnx "
                "or use the mediapipe landmark backend"
            )
        return self.root / (entry.get("int8") if int8 and entry.get("int8") else entry["fp32"])

    def landmark_geometry(self) -> Path:
        """MediaPipe's canonical face (geometry_pipeline_metadata_landmarks.binarypb) for the head pose."""
        if not self.has_landmark_onnx:
            raise BundleError(f"bundle {self.root} has no ONNX landmark models: use the mediapipe landmark backend")
        return self.root / self.manifest[LANDMARK_ONNX]["geometry"]

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"


def extract(tarball: Path, dest: Path | None = None) -> Path:
    """Unpack a bundle tarball (once) beside it or into `dest`; returns the bundle directory.

    Every member must lie inside the one bundle directory (no `..`, no absolute path, no link, no
    device file): a member such as `<bundle>/../<sibling>/x` stays inside `dest` and would pass
    tarfile's "data" filter, yet overwrite another bundle. Unpacking goes to a temporary folder
    beside the target and is renamed into place only when complete, so a failed or interrupted
    extraction never leaves a half-filled bundle directory that a later start would accept.
    """
    dest = dest or tarball.parent
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            return _extract_members(tar, tarball, dest)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise BundleError(f"{tarball} is not a readable .tar.gz ({reason}): copy the bundle again") from None


def _member_problem(member: tarfile.TarInfo, top: str) -> str | None:
    """Why `member` may not be unpacked (None: it may): it must be a file or folder inside `top`."""
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or (parts and parts[0] != top) or ".." in name.replace("\\", "/").split("/"):
        return f"member {name!r} points outside the bundle directory {top!r}"
    if not (member.isfile() or member.isdir()):
        return f"member {name!r} is a link or special file"
    return None


def _extract_members(tar: tarfile.TarFile, tarball: Path, dest: Path) -> Path:
    members = tar.getmembers()  # reads the whole archive: a truncated one fails here, before any write
    tops = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
    if len(tops) != 1 or next(iter(tops)) in ("..", "/"):
        raise BundleError(f"{tarball} should hold one bundle directory, it holds {sorted(tops)}: rebuild it")
    top = tops.pop()
    for member in members:
        problem = _member_problem(member, top)
        if problem is not None:
            raise BundleError(f"{tarball}: {problem}: refusing it; rebuild the bundle or get it from its source")
    root = dest / top
    if root.exists():
        return root  # unpacked before (only ever complete: see the rename below); open_bundle verifies it
    dest.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{top}.extracting-", dir=dest))
    try:
        tar.extractall(scratch, members=members, filter="data")  # "data" refuses absolute paths, links out
        try:
            (scratch / top).rename(root)
        except OSError:
            if not root.is_dir():  # another process unpacked the same tarball at the same time: use theirs
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return root


def open_bundle(path: str | Path, verify: bool = True, trust: TrustPolicy | None = None) -> Bundle:
    """Load a bundle directory (or .tar.gz, unpacked beside it) and, by default, verify every file.

    Verifying also applies the signature rule of `latentcast.signing` (`trust`, else the process-wide policy).
    """
    path = Path(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        path = extract(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path} has no {MANIFEST}: give a bundle built by `python -m export.bundle build`")
    manifest_bytes = manifest_path.read_bytes()  # read once: the signature is checked on these very bytes
    try:
        manifest = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{manifest_path} is not valid JSON ({exc}): rebuild the bundle") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path} is format {manifest.get('format')} v{manifest.get('format_version')}, "
            f"this reader knows {FORMAT} v{FORMAT_VERSION}: update latentcast or rebuild the bundle"
        )
    if verify:
        issues = problems(path, manifest)
        if issues:
            more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
            raise BundleError(f"bundle {path}: {issues[0]}{more}: rebuild or re-copy the bundle")
        return Bundle(path, manifest, trust=check_signature(path, manifest_bytes, trust))
    return Bundle(path, manifest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentcast.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["verify"])
    parser.add_argument("bundle", type=Path, help="bundle directory or .tar.gz")
    add_trust_arguments(parser)
    args = parser.parse_args(argv)
    set_trust_from_args(args)
    if args.bundle.is_file():  # a tarball: check its own contents, not a copy unpacked earlier
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            return _report(open_bundle(extract(args.bundle, Path(scratch))), args.bundle)
    return _report(open_bundle(args.bundle), args.bundle)


def _report(bundle: Bundle, given: Path) -> int:
    files = len(bundle.manifest["files"])
    models = ", ".join(bundle.models)
    print(f"ok  {given}  version {bundle.version}, {files} files verified, {bundle.trust}, models: {models}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
