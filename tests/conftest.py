"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    """2 cores shared by many jobs: a second torch thread only spins (5x slower measured here).

    Not autouse: torch is imported only by the tests that ask for this, so the torch-free edge and
    renderer tests never load it.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MNIST_KEYS = [f"data/mnist/{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")]


def resolve_or_skip(keys: list[str]) -> dict:
    """{key: verified path}; skip only when an asset is genuinely absent (in neither the mirror nor
    the cache, and it cannot be fetched). A file that is there but bad, or a mirror setting that
    is wrong, fails loudly: a corrupt mirror must not turn a test run into silent skips.
    """
    from latentcast import assets

    mirror = assets.mirror_dir()  # a mirror variable naming no directory raises AssetError here
    found = {}
    for key in keys:
        present = (mirror is not None and (mirror / key).is_file()) or (assets.cache_dir() / key).is_file()
        try:
            found[key] = assets.resolve(key)
        except assets.AssetError as exc:
            if present:
                raise
            pytest.skip(f"{key} is absent (set LATENTCAST_ASSET_MIRROR to a mirror holding it): {exc}")
    return found


@pytest.fixture(scope="session")
def mnist_files() -> dict:
    """The four MNIST files, checksum-verified (see `resolve_or_skip`)."""
    return resolve_or_skip(MNIST_KEYS)


@pytest.fixture(autouse=True, scope="session")
def no_trusted_keys_from_the_user(tmp_path_factory):
    """Bundles made by the tests are unsigned: a developer's own ~/.config/latentcast/trusted_keys
    would make every bundle test fail, so the whole run (and the CLIs it starts) trusts an empty folder.
    Tests of signing pass their own --trusted-keys folder."""
    import os

    empty = tmp_path_factory.mktemp("no_trusted_keys")
    before = os.environ.get("LATENTCAST_TRUSTED_KEYS")
    os.environ["LATENTCAST_TRUSTED_KEYS"] = str(empty)
    yield
    if before is None:
        os.environ.pop("LATENTCAST_TRUSTED_KEYS", None)
    else:
        os.environ["LATENTCAST_TRUSTED_KEYS"] = before
