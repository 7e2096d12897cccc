"""Bundle signing keys and signatures (Ed25519): make a key pair, sign a bundle, trust a key on a device.

    python -m export.sign keygen --out ~/.latentcast-keys --name builder   # builder.ed25519 + builder.pub
    python -m export.sign sign runs/bundles/latentcast-bundle-X --key ~/.latentcast-keys/builder.ed25519
    python -m export.sign trust builder.pub        # on the device: copy into the trusted keys folder

`python -m export.bundle build ... --sign KEY` signs while building. What is checked, and when a
device refuses a bundle: `latentcast.signing` and docs/EXPORT.md ("Signed bundles").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from latentcast import signing
from latentcast.bundle import MANIFEST, open_bundle, problems
from latentcast.errors import UserError, run_cli


def sign_bundle(root: Path, key: Path) -> Path:
    """Sign a bundle directory (after checking its files against its manifest); re-pack `<root>.tar.gz` if present."""
    if not (root / MANIFEST).is_file():
        raise UserError(f"{root} is not a bundle directory (no {MANIFEST}): sign the folder, not the tarball")
    issues = problems(root, open_bundle(root, verify=False).manifest)  # format, then every file's hash
    if issues:
        raise UserError(f"bundle {root}: {issues[0]}: refusing to sign a bundle that does not match its manifest")
    signature = signing.sign_manifest(root, key, MANIFEST)
    tarball = root.with_name(root.name + ".tar.gz")
    if tarball.is_file():
        pack(root, tarball)
    return signature


def pack(root: Path, tarball: Path) -> None:
    """Write `tarball` from `root` with neutral owners (the same layout `export.bundle build` writes)."""

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    partial = tarball.with_name(tarball.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(root, arcname=root.name, filter=plain)
    partial.replace(tarball)


def trust_key(public: Path, folder: Path | None) -> Path:
    """Copy a checked .pub file into the trusted keys folder; returns where it went."""
    signing.load_public(public)  # refuse anything but an ssh-ed25519 line
    folder = folder or signing.default_trust_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / public.name
    if target.exists() and target.read_bytes() != public.read_bytes():
        raise UserError(f"{target} already exists with another key: rename the .pub file")
    shutil.copyfile(public, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.sign", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    keygen = sub.add_parser("keygen", help="make NAME.ed25519 (secret, keep it) and NAME.pub (give it to devices)")
    keygen.add_argument("--out", type=Path, required=True, help="folder for the key files")
    keygen.add_argument("--name", default="builder", help="file name stem")
    sign = sub.add_parser("sign", help="sign a bundle directory (and re-pack its .tar.gz beside it)")
    sign.add_argument("bundle", type=Path, help="bundle directory")
    sign.add_argument("--key", type=Path, required=True, help="NAME.ed25519 secret key")
    trust = sub.add_parser("trust", help="add a public key to this machine's trusted keys folder")
    trust.add_argument("public", type=Path, help="NAME.pub")
    trust.add_argument("--trusted-keys", type=Path, help="folder (default: the one bundles are checked against)")
    args = parser.parse_args(argv)
    if args.action == "keygen":
        secret, public = signing.generate_keypair(args.out, args.name)
        kid = signing.public_key_id(public)
        print(f"secret key: {secret} (keep it private)\npublic key: {public} (key id {kid}; copy it to devices)")
    elif args.action == "sign":
        path = sign_bundle(args.bundle, args.key)
        print(f"signed {args.bundle} -> {path}")
    else:
        target = trust_key(args.public, args.trusted_keys)
        print(f"trusted {args.public} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
