"""Build the default avatar (VRM 1.0 and VRM 0.x) from code: `python scripts/make_avatar.py [--out DIR]`.

The geometry, skeleton and expressions are defined in `renderer/default_avatar.py`; the files are
deterministic, so they are generated at setup, demo or test time and never committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latentcast.errors import run_cli
from renderer.default_avatar import DEFAULT_DIR, DEFAULT_FILES, write


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/make_avatar.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"output folder (default {DEFAULT_DIR})")
    args = p.parse_args(argv)
    for version, name in DEFAULT_FILES.items():
        path = write(args.out / name, version)
        print(f"VRM {version}: {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
