"""Ed25519 signatures on bundles, and the device's list of trusted public keys.

Why: the manifest's sha256 list catches corruption, not an attacker, who simply rewrites files and
hashes together. A bundle is therefore signed where it is built (`python -m export.bundle build
--sign KEY`, keys from `python -m export.sign keygen`): `signature.json` beside `manifest.json`
holds an Ed25519 signature over the exact bytes of `manifest.json`, which lists the sha256 of every
other file, so one signature covers every model, card, landmark model and the metadata.

Trust (one rule, applied by `latentcast.bundle.open_bundle`; docs/EXPORT.md "Signed bundles"):
- The trusted keys are the `*.pub` files (OpenSSH `ssh-ed25519` lines) in one folder: the one
  given (`--trusted-keys`, edge config `bundle.trusted_keys`), else `$LATENTCAST_TRUSTED_KEYS`,
  else `~/.config/latentcast/trusted_keys/` (`$XDG_CONFIG_HOME` respected).
- When that folder holds at least one key, a bundle must be signed by one of them; unsigned or
  untrusted bundles are refused unless `allow_unsigned` (`--allow-unsigned`, development only),
  which loads them with a loud warning.
- With no trusted key configured, bundles load as before (a warning says nothing was checked),
  so development and CI need no keys.
- A signature that does not match the manifest is refused always, whatever the settings.

Device-built TensorRT engines cannot be signed at build time (they are made on the device), so
`python -m export.tensorrt` writes a device-local manifest beside each engine
(`<engine>.json`: sha256 of the engine and of the verified ONNX it was built from) and the edge
checks it before loading the engine (`verify_engine`).

numpy-free and torch-free; `cryptography` is imported only when a key or signature is touched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from latentcast.errors import UserError

log = logging.getLogger(__name__)

SIGNATURE = "signature.json"
SIGNATURE_FORMAT = "latentcast-signature"
TRUSTED_KEYS_ENV = "LATENTCAST_TRUSTED_KEYS"
PUBLIC_SUFFIX = ".pub"
SECRET_SUFFIX = ".ed25519"
ENGINE_MANIFEST_SUFFIX = ".json"  # encoder.int8.engine -> encoder.int8.engine.json


class SignatureError(UserError):
    """A bundle or engine failed signature or trust checks."""


def default_trust_dir() -> Path:
    """$LATENTCAST_TRUSTED_KEYS, else $XDG_CONFIG_HOME/latentcast/trusted_keys (~/.config/...)."""
    if os.environ.get(TRUSTED_KEYS_ENV):
        return Path(os.environ[TRUSTED_KEYS_ENV]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "latentcast" / "trusted_keys"


def key_id(public_raw: bytes) -> str:
    """Short fingerprint of a public key (first 16 hex digits of its sha256), shown in messages."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


# -- keys -------------------------------------------------------------------------------------
def _raw_public(key) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser

    return key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)


def generate_keypair(out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write NAME.ed25519 (secret, PKCS#8 PEM, mode 600) and NAME.pub (one OpenSSH line); returns both."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out_dir)
    secret_path, public_path = out / f"{name}{SECRET_SUFFIX}", out / f"{name}{PUBLIC_SUFFIX}"
    for path in (secret_path, public_path):
        if path.exists():
            raise UserError(f"{path} already exists: choose another --name or folder (never overwrite a key)")
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    line = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH)
    public_path.write_bytes(line + f" latentcast:{name}\n".encode())
    return secret_path, public_path


def load_secret(path: str | Path):
    """The Ed25519 private key in a PEM file written by `generate_keypair`."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not path.is_file():
        raise UserError(f"signing key {path} not found: make one with `python -m export.sign keygen --out DIR`")
    try:
        key = ser.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path} is not an unencrypted PEM private key ({exc}): pass the NAME.ed25519 file") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"{path} is not an Ed25519 key: make one with `python -m export.sign keygen`")
    return key


def load_public(path: str | Path):
    """An Ed25519 public key from a `.pub` file (OpenSSH `ssh-ed25519 AAAA... comment` line)."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    try:
        key = ser.load_ssh_public_key(path.read_bytes().strip())
    except (ValueError, TypeError, OSError) as exc:
        raise UserError(f"trusted key {path} is not an ssh-ed25519 public key line ({exc}): remove or fix it") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"trusted key {path} is not Ed25519: use keys made by `python -m export.sign keygen`")
    return key


def public_key_id(path: str | Path) -> str:
    """The key id of a .pub file (as messages and `export.sign keygen` show it)."""
    return key_id(_raw_public(load_public(path)))


# -- trust policy -----------------------------------------------------------------------------
@dataclass
class TrustPolicy:
    """Which public keys a bundle must be signed by, and whether unsigned bundles may load (dev)."""

    keys_dir: Path | None = None  # None: default_trust_dir()
    allow_unsigned: bool = False

    @property
    def folder(self) -> Path:
        return Path(self.keys_dir).expanduser() if self.keys_dir else default_trust_dir()

    def keys(self) -> dict[str, object]:
        """{key id: public key} of every *.pub in the folder (empty: no trust configured)."""
        folder = self.folder
        if self.keys_dir and not folder.is_dir():
            raise UserError(f"trusted keys folder {folder} not found: create it, copy the builders' .pub files there")
        if not folder.is_dir():
            return {}
        keys = {}
        for path in sorted(folder.glob(f"*{PUBLIC_SUFFIX}")):
            key = load_public(path)
            keys[key_id(_raw_public(key))] = key
        return keys


_policy: TrustPolicy | None = None


def set_policy(policy: TrustPolicy | None) -> None:
    """Set the process-wide trust policy (CLIs do this from --trusted-keys / --allow-unsigned / config)."""
    global _policy
    _policy = policy


def policy() -> TrustPolicy:
    """The process-wide policy: what a CLI set, else the defaults (trust folder from the environment)."""
    return _policy or TrustPolicy()


# -- bundle signatures ------------------------------------------------------------------------
def sign_manifest(root: str | Path, secret_file: str | Path, manifest_name: str = "manifest.json") -> Path:
    """Write `root/signature.json`: an Ed25519 signature over the bytes of `root/manifest.json`."""
    root = Path(root)
    key = load_secret(secret_file)
    data = (root / manifest_name).read_bytes()
    public = _raw_public(key.public_key())
    record = {
        "format": SIGNATURE_FORMAT,
        "version": 1,
        "algorithm": "ed25519",
        "signed_file": manifest_name,
        "key_id": key_id(public),
        "public_key": base64.b64encode(public).decode(),
        "signature": base64.b64encode(key.sign(data)).decode(),
    }
    path = root / SIGNATURE
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def _read_signature(root: Path) -> dict | None:
    path = root / SIGNATURE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if record.get("format") != SIGNATURE_FORMAT or record.get("algorithm") != "ed25519":
            raise ValueError("unknown signature format")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        Ed25519PublicKey.from_public_bytes(base64.b64decode(record["public_key"], validate=True))
        base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SignatureError(f"{path} is not a valid latentcast signature ({exc}): re-sign the bundle") from None
    return record


def check_bundle(root: str | Path, manifest_bytes: bytes, trust: TrustPolicy | None = None) -> str:
    """Apply the trust rule (module docstring) to a bundle whose files already match its manifest.

    Returns a short description for logs ("signed by <id> (trusted)", ...); raises SignatureError.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    root = Path(root)
    trust = trust or policy()
    keys = trust.keys()
    record = _read_signature(root)
    where = f"bundle {root}"
    if record is not None:
        embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(record["public_key"]))
        kid = key_id(_raw_public(embedded))
        try:
            embedded.verify(base64.b64decode(record["signature"]), manifest_bytes)
        except InvalidSignature:
            raise SignatureError(
                f"{where}: signature.json does not match manifest.json (modified after signing): "
                "get the bundle from its builder again"
            ) from None
        if kid in keys:
            return f"signed by {kid} (trusted)"
        if not keys:
            log.warning("%s is signed by %s, but no trusted keys are configured (%s): not checked", where, kid,
                        trust.folder)  # fmt: skip
            return f"signed by {kid} (no trust list)"
        status = f"signed by {kid}, which is not a trusted key in {trust.folder}"
    elif not keys:
        log.warning("%s is unsigned and no trusted keys are configured (%s): its origin is not checked", where,
                    trust.folder)  # fmt: skip
        return "unsigned (no trust list)"
    else:
        status = "unsigned"
    if trust.allow_unsigned:
        log.warning("LOADING AN UNTRUSTED BUNDLE: %s is %s (--allow-unsigned: development only)", where, status)
        return f"{status} (allowed: --allow-unsigned)"
    raise SignatureError(
        f"{where} is {status}: sign it with `python -m export.sign sign BUNDLE --key KEY` using a trusted key, "
        "or pass --allow-unsigned for development"
    )


# -- device-built engines ---------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def engine_manifest_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ENGINE_MANIFEST_SUFFIX)


def write_engine_manifest(engine: str | Path, onnx: str | Path, extra: dict | None = None) -> Path:
    """Record, beside a just-built engine, its sha256 and that of the (verified) ONNX it came from."""
    engine, onnx = Path(engine), Path(onnx)
    record = {
        "engine": engine.name,
        "engine_sha256": sha256_file(engine),
        "bytes": engine.stat().st_size,
        "onnx": onnx.name,
        "onnx_sha256": sha256_file(onnx),
        **(extra or {}),
    }
    path = engine_manifest_path(engine)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def verify_engine(engine: str | Path, onnx: str | Path) -> None:
    """SignatureError unless `engine` matches its device-local manifest and was built from `onnx` as it is now."""
    engine, onnx = Path(engine), Path(onnx)
    manifest = engine_manifest_path(engine)
    rebuild = f"rebuild it with `python -m export.tensorrt BUNDLE` or delete {engine}"
    if not manifest.is_file():
        raise SignatureError(f"engine {engine} has no device manifest {manifest.name}: {rebuild}")
    try:
        record = json.loads(manifest.read_text())
        want_engine, want_onnx = record["engine_sha256"], record["onnx_sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{manifest} is unreadable ({exc}): {rebuild}") from None
    if sha256_file(engine) != want_engine:
        raise SignatureError(f"engine {engine} was modified after it was built (sha256 differs): {rebuild}")
    if sha256_file(onnx) != want_onnx:
        raise SignatureError(f"engine {engine} was built from another {onnx.name} than the bundle's: {rebuild}")


# -- CLI flags (one definition for every CLI that loads a bundle) ------------------------------
def add_trust_arguments(parser) -> None:
    """--trusted-keys and --allow-unsigned, as every bundle-loading CLI spells them."""
    parser.add_argument(
        "--trusted-keys",
        type=Path,
        help=f"folder of trusted .pub keys (default: ${TRUSTED_KEYS_ENV} or ~/.config/latentcast/trusted_keys)",
    )
    parser.add_argument(
        "--allow-unsigned", action="store_true", help="load unsigned/untrusted bundles anyway (development only)"
    )


def set_trust_from_args(args, keys_dir: str | Path | None = None, allow_unsigned: bool = False) -> TrustPolicy:
    """Set the process-wide policy from the CLI flags (which win) and a config file's values."""
    chosen = getattr(args, "trusted_keys", None) or (Path(keys_dir) if keys_dir else None)
    trust = TrustPolicy(chosen, bool(getattr(args, "allow_unsigned", False) or allow_unsigned))
    set_policy(trust)
    return trust
