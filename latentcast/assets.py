"""The one way latentcast finds an external file (datasets, landmark models, sample media).

Resolution order, first hit wins, and every hit is checksum-verified before use:

1. an explicit path the user gave (a file, or a directory holding the file);
2. a mirror directory named by ``LATENTCAST_ASSET_MIRROR`` (laid out as the catalog keys);
3. the user cache (``LATENTCAST_CACHE``, default ``$XDG_CACHE_HOME/latentcast``);
4. a download from the official source into the cache (unless ``LATENTCAST_OFFLINE=1``).

A file that fails its checksum is never used: an explicit or mirror file is an error that
names the file; a cached one is replaced by a fresh download. The catalog of keys, digests and
sources is package data, `asset_catalog.json` (edit it by hand when an asset is added).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from latentcast.errors import UserError, run_cli

MIRROR_ENV = "LATENTCAST_ASSET_MIRROR"
CACHE_ENV = "LATENTCAST_CACHE"
OFFLINE_ENV = "LATENTCAST_OFFLINE"

log = logging.getLogger(__name__)


class AssetError(UserError):
    """An asset is missing, corrupt or cannot be fetched."""


@dataclass(frozen=True)
class Asset:
    """One external file: its key (also its path in a mirror), accepted digests and sources."""

    key: str
    sha256: tuple[str, ...]
    size: int | None
    urls: tuple[str, ...]

    @property
    def filename(self) -> str:
        return Path(self.key).name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(asset: Asset, path: Path) -> str | None:
    """Return why `path` is not a good copy of `asset`, or None when it is."""
    size = path.stat().st_size
    if asset.size is not None and size != asset.size:
        return f"{size} bytes, expected {asset.size} (truncated or a different file)"
    digest = sha256_of(path)
    if digest not in asset.sha256:
        return f"sha256 {digest[:12]}..., expected {asset.sha256[0][:12]}..."
    return None


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "latentcast"


def mirror_dir() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise AssetError(f"{MIRROR_ENV}={value} is not a directory: point it at an asset mirror or unset it")
    return path


CATALOG_FILE = Path(__file__).with_name("asset_catalog.json")  # package data: key, sha256, size, urls per asset


@functools.cache
def catalog(path: Path = CATALOG_FILE) -> dict[str, Asset]:
    """{key: Asset} from the catalog file (read once); a malformed entry is an error naming it."""
    try:
        entries = json.loads(path.read_text())["assets"]
    except (OSError, ValueError, KeyError) as exc:
        raise AssetError(f"asset catalog {path} is unreadable ({exc}): reinstall latentcast") from None
    assets: dict[str, Asset] = {}
    for number, entry in enumerate(entries):
        try:
            asset = Asset(entry["key"], tuple(entry["sha256"]), entry["size"], tuple(entry["urls"]))
        except (KeyError, TypeError) as exc:
            raise AssetError(f"asset catalog {path} entry {number} lacks {exc}: fix the entry") from None
        bad = [d for d in asset.sha256 if len(d) != 64 or d.strip("0123456789abcdef")]
        if asset.key in assets or not asset.sha256 or bad:
            raise AssetError(f"asset catalog {path}: {asset.key} is listed twice or has a bad sha256: fix the entry")
        assets[asset.key] = asset
    return assets


def lookup(key: str) -> Asset:
    try:
        return catalog()[key]
    except KeyError:
        raise AssetError(f"unknown asset {key!r}: run `python -m latentcast.assets list` for the known ones") from None


def catalog_keys(prefix: str = "") -> list[str]:
    """Catalog keys under a prefix, e.g. ``catalog_keys("data/mnist/")``."""
    return sorted(k for k in catalog() if k.startswith(prefix))


def resolve(key: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return a verified local path for the asset `key`, fetching it if need be."""
    asset = lookup(key)
    if explicit is not None:
        return _verified(asset, _explicit_candidate(asset, Path(explicit)), "given path")
    mirror = mirror_dir()
    if mirror is not None and (mirror / key).is_file():
        return _verified(asset, mirror / key, f"mirror ({MIRROR_ENV})")
    cached = cache_dir() / key
    if cached.is_file():
        problem = check(asset, cached)
        if problem is None:
            return cached
        log.warning("cached %s is bad (%s); fetching it again", cached, problem)
        cached.unlink()
    return _download(asset, cached)


def _explicit_candidate(asset: Asset, path: Path) -> Path:
    if path.is_dir():
        for candidate in (path / asset.filename, path / asset.key):
            if candidate.is_file():
                return candidate
        raise AssetError(f"{path} has no {asset.filename}: put the file there or give another directory")
    if not path.is_file():
        raise AssetError(f"{path} does not exist: give the path of {asset.filename}")
    return path


def _verified(asset: Asset, path: Path, origin: str) -> Path:
    problem = check(asset, path)
    if problem is not None:
        raise AssetError(f"{path} ({origin}) is not a good copy of {asset.key}: {problem}; replace the file")
    return path


def _download(asset: Asset, target: Path) -> Path:
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise AssetError(
            f"{asset.key} is not in the cache and {OFFLINE_ENV} is set: "
            f"set {MIRROR_ENV} to a directory holding {asset.key}"
        )
    from latentcast.progress import progress

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    failures = []
    for url in asset.urls:
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with progress(total=total, unit="B", unit_scale=True, desc=asset.filename, leave=False) as bar:
                    for block in iter(lambda: response.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
        except OSError as exc:
            failures.append(f"{url}: {exc}")
            continue
        problem = check(asset, partial)
        if problem is None:
            partial.replace(target)
            log.info("fetched %s", asset.key)
            return target
        failures.append(f"{url}: {problem}")
    partial.unlink(missing_ok=True)
    raise AssetError(
        f"could not fetch {asset.key} ({'; '.join(failures)}); "
        f"offline, set {MIRROR_ENV} to a directory holding {asset.key}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m latentcast.assets", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "fetch", "copy"], help="list keys; fetch and verify; copy to a dir")
    parser.add_argument("prefix", nargs="?", default="", help="only keys starting with this (default: all)")
    parser.add_argument("--to", type=Path, help="with copy: destination mirror directory")
    args = parser.parse_args(argv)
    selected = catalog_keys(args.prefix)
    if not selected:
        raise AssetError(f"no asset key starts with {args.prefix!r}: run `list` to see them")
    for key in selected:
        if args.action == "list":
            print(key)
            continue
        path = resolve(key)
        if args.action == "copy":
            if args.to is None:
                raise UserError("copy needs --to DIR: the mirror directory to fill")
            (args.to / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, args.to / key)
        print(f"ok  {key}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
