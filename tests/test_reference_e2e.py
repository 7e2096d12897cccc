"""End to end through the real edge CLI (`python -m edge.run`, its own process, real MediaPipe, a real
bundle, real ZeroMQ): which gesture comes out on the wire for media whose gesture is known.

- the two shared thumbs-up photos (docs/RESULTS.md: "both thumbs-up photos give thumbs_up") give
  `thumbs_up` as the argmax of the hand's class probabilities on every frame;
- the shared hand clip (a relaxed open hand; docs/RESULTS.md: `open_palm` on 100 % of its frames
  with the all-labels model) gives `open_palm` on most frames.

The bundle's gesture model is a small one trained here on baron105's real rows (tests/_export_fixtures.py),
not the benchmark's model, so the clip's bar is "most frames", with the measured share in a comment.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_edge_loop import CLIP, run_edge

from latentcast.assets import resolve

pytestmark = pytest.mark.slow  # trains a gesture model on ~2700 real rows and builds a bundle (about a minute)

PHOTOS = ("data/images/hands/hand_thumb_up.jpg", "data/images/hands/thumbs-up.png")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A real bundle: a gesture AAE trained on all of baron105's calibration pool, exported, INT8-quantized."""
    pytest.importorskip("torch")
    from _export_fixtures import gesture_model_dir

    from calibration.sets import hand_split
    from export import bundle as bundle_writer

    root = tmp_path_factory.mktemp("e2e_bundle")
    rows = len(hand_split()[0].x)
    directory, _ = bundle_writer.build(
        root / "out", {"gesture": gesture_model_dir(root / "gesture", rows=rows)}, version="e2e", calib_rows=128
    )
    return directory


def classes_of(bundle) -> list[str]:
    return json.loads((bundle / "models" / "gesture" / "model_card.json").read_text())["classes"]


def hand_labels(bundle, *args: str) -> list[str]:
    """The argmax class name of every present hand block the CLI published."""
    classes = classes_of(bundle)
    messages, _ = run_edge(*args, "--bundle", str(bundle), "--no-face", timeout_s=90)
    return [classes[int(np.argmax(h.y))] for m in messages for h in m.hands if h.present]


def test_the_shared_thumbs_up_photos_give_thumbs_up_on_the_wire(bundle, tmp_path):
    for key in PHOTOS:
        photo = resolve(key)
        one = tmp_path / photo.stem  # a folder of one photo, looped: the edge sees it as a still camera
        one.mkdir()
        shutil.copy(photo, one / photo.name)
        # 40 frames: a subscriber joins a PUB socket late (ZeroMQ's slow joiner), and on a loaded machine the first
        # dozen frames of a --fast run can all go out before it has; 6 received hands still decide the label
        labels = hand_labels(bundle, "--source", str(one), "--loop-source", "--fast", "--frames", "40")
        assert len(labels) >= 6, f"{photo.name}: a hand in only {len(labels)} messages"
        assert set(labels) == {"thumbs_up"}, f"{photo.name}: {labels}"


def test_the_shared_hand_clip_gives_open_palm_on_most_frames(bundle):
    labels = hand_labels(bundle, "--source", f"file://{resolve(CLIP)}", "--fast", "--frames", "80")
    assert len(labels) >= 40
    share = labels.count("open_palm") / len(labels)
    # measured 0.99 (76 of 77) with this fixture model (the benchmark's all-labels model: 100 % of 202 frames);
    # 0.9 leaves one frame in ten for the frames where the hand enters or leaves. (A model trained on 800 of the
    # rows calls the whole clip `call_me`: this bar separates a model that learned the shape from one that did not.)
    assert share >= 0.9, {name: labels.count(name) for name in set(labels)}
