"""The asset resolver: mirror hits are verified, corrupt or truncated files are refused."""

from __future__ import annotations

import shutil

import pytest

from latentcast import assets
from latentcast.assets import AssetError

KEY = "data/hand_gestures/kinivi/keypoint_classifier_label.csv"


def test_mirror_file_resolves_and_verifies():
    path = assets.resolve(KEY)
    assert path.is_file()
    assert assets.check(assets.lookup(KEY), path) is None


def test_corrupted_mirror_file_is_refused(tmp_path, monkeypatch):
    good = assets.resolve(KEY)
    bad = tmp_path / KEY
    bad.parent.mkdir(parents=True)
    data = bytearray(good.read_bytes())
    data[0] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv(assets.MIRROR_ENV, str(tmp_path))
    with pytest.raises(AssetError, match="not a good copy"):
        assets.resolve(KEY)


def test_truncated_explicit_file_is_refused(tmp_path):
    good = assets.resolve("data/mnist/t10k-labels-idx1-ubyte.gz")
    truncated = tmp_path / good.name
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(AssetError, match="truncated"):
        assets.resolve("data/mnist/t10k-labels-idx1-ubyte.gz", explicit=tmp_path)


def test_explicit_directory_is_searched(tmp_path):
    good = assets.resolve(KEY)
    shutil.copyfile(good, tmp_path / good.name)
    assert assets.resolve(KEY, explicit=tmp_path) == tmp_path / good.name


def test_bad_cache_entry_is_dropped_and_offline_fetch_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv(assets.MIRROR_ENV, raising=False)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv(assets.OFFLINE_ENV, "1")
    cached = tmp_path / KEY
    cached.parent.mkdir(parents=True)
    cached.write_text("garbage")
    with pytest.raises(AssetError, match="set LATENTCAST_ASSET_MIRROR"):
        assets.resolve(KEY)
    assert not cached.exists(), "a corrupt cache entry must never be kept"


def test_unknown_key_and_missing_mirror_are_user_errors(monkeypatch, tmp_path):
    with pytest.raises(AssetError, match="unknown asset"):
        assets.resolve("data/nope.bin")
    monkeypatch.setenv(assets.MIRROR_ENV, str(tmp_path / "absent"))
    with pytest.raises(AssetError, match="not a directory"):
        assets.resolve(KEY)


def test_every_mirror_file_matches_the_catalog():
    mirror = assets.mirror_dir()
    if mirror is None:
        pytest.skip("no LATENTCAST_ASSET_MIRROR set: nothing local to check")
    missing = [k for k in assets.catalog_keys() if not (mirror / k).is_file()]
    assert not missing
    bad = {k: assets.check(assets.lookup(k), mirror / k) for k in assets.catalog_keys()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_catalog_is_package_data_and_a_bad_entry_is_named(tmp_path):
    import json

    entries = json.loads(assets.CATALOG_FILE.read_text())["assets"]
    assert assets.CATALOG_FILE.suffix == ".json" and len(assets.catalog()) == len(entries) > 50
    assert assets.lookup(KEY).sha256 == tuple(next(e["sha256"] for e in entries if e["key"] == KEY))
    broken = tmp_path / "catalog.json"
    broken.write_text(json.dumps({"assets": [{**entries[0], "sha256": ["abc"]}]}))
    with pytest.raises(assets.AssetError, match=f"{entries[0]['key']} is listed twice or has a bad sha256"):
        assets.catalog(broken)
    broken.write_text(json.dumps({"assets": [{"key": "x"}]}))
    with pytest.raises(assets.AssetError, match="entry 0 lacks 'sha256'"):
        assets.catalog(broken)
