"""Class labels with hysteresis and a minimum dwell (latentcast.hysteresis): fast switches, no flicker."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from latentcast.hysteresis import UNKNOWN, HysteresisConfig, LabelHysteresis


def probs(k: int, winner: int, p: float) -> np.ndarray:
    out = np.full(k, (1.0 - p) / (k - 1), np.float32)
    out[winner] = p
    return out


def run(labeler: LabelHysteresis, stream, ratios=None) -> list[int]:
    ratios = ratios if ratios is not None else [None] * len(stream)
    return [labeler.update(p, r) for p, r in zip(stream, ratios, strict=True)]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_a_step_switches_within_k_frames(k):
    labeler = LabelHysteresis(enter=0.6, config=HysteresisConfig(dwell_frames=k, hold_frames=max(k, 4)))
    stream = [probs(4, 0, 0.9)] * 20 + [probs(4, 2, 0.9)] * 20
    out = run(labeler, stream)
    assert out[19] == 0
    switched = next(i for i in range(20, 40) if out[i] == 2)
    assert switched - 20 <= k - 1  # the label follows k - 1 frames after the verdict changes
    assert out[switched:] == [2] * (40 - switched)
    assert out[k - 1] == 0 and (k == 1 or out[k - 2] == UNKNOWN)  # entering from unknown also waits k frames


@pytest.mark.parametrize("p", [0.2, 0.45, 0.6, 0.6000001, 0.9])
@pytest.mark.parametrize("ratio", [None, 0.5, 1.0, 1.0001, 5.0])
def test_a_constant_input_never_flickers_even_on_a_threshold(p, ratio):
    out = run(LabelHysteresis(enter=0.6), [probs(5, 1, p)] * 300, [ratio] * 300)
    assert sum(a != b for a, b in itertools.pairwise(out)) <= 1  # at most the one entry
    assert len(set(out[5:])) == 1


def test_brief_dips_below_the_threshold_do_not_flicker():
    rng = np.random.default_rng(0)
    labeler = LabelHysteresis(enter=0.6)
    # a held shape whose probability wobbles and dips under the enter threshold now and then
    stream = [probs(5, 1, float(p)) for p in np.clip(0.7 + rng.normal(0.0, 0.05, 600), 0.3, 0.95)]
    out = run(labeler, stream)
    assert sum(a != b for a, b in itertools.pairwise(out)) == 1 and out[-1] == 1


def test_single_frame_outliers_do_not_switch_with_a_dwell_of_two():
    labeler = LabelHysteresis(enter=0.6)
    stream = [probs(3, 0, 0.9)] * 10
    stream[5] = probs(3, 1, 0.95)  # one frame of another class
    stream[7] = probs(3, 0, 0.2)  # one frame of unknown
    assert run(labeler, stream)[1:] == [0] * 9


def test_held_class_drops_to_unknown_below_the_leave_threshold_or_on_a_bad_reconstruction():
    labeler = LabelHysteresis(enter=0.6, config=HysteresisConfig(dwell_frames=2, leave_margin=0.2, recon_leave=1.5))
    out = run(labeler, [probs(3, 0, 0.9)] * 3 + [probs(3, 0, 0.5)] * 3 + [probs(3, 0, 0.3)] * 3)
    assert out[2:6] == [0, 0, 0, 0]  # 0.5 is below enter (0.6) but above leave (0.4): held
    assert out[-1] == UNKNOWN
    labeler.reset()
    ratios = [0.5] * 3 + [1.2] * 3 + [2.0] * 3  # 1.2 x the threshold: held (3 < hold_frames); 2.0 > 1.5: dropped
    out = run(labeler, [probs(3, 0, 0.9)] * 9, ratios)
    assert out[2:6] == [0, 0, 0, 0] and out[-1] == UNKNOWN


def test_a_class_is_never_entered_while_its_reconstruction_is_out_of_range():
    labeler = LabelHysteresis(enter=0.6)
    assert set(run(labeler, [probs(3, 0, 0.99)] * 10, [1.01] * 10)) == {UNKNOWN}


def test_a_sustained_unknown_verdict_inside_the_band_drops_the_class_after_hold_frames():
    labeler = LabelHysteresis(enter=0.6, config=HysteresisConfig(dwell_frames=2, hold_frames=4))
    out = run(labeler, [probs(3, 0, 0.9)] * 5 + [probs(3, 0, 0.5)] * 10)  # 0.5: in the band, verdict unknown
    assert out[5:8] == [0, 0, 0] and out[8] == UNKNOWN  # the 4th unknown frame switches


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="dwell_frames"):
        HysteresisConfig(dwell_frames=0)
    with pytest.raises(ValueError, match="recon_leave"):
        HysteresisConfig(recon_leave=0.5)
    with pytest.raises(ValueError, match="hold_frames"):
        HysteresisConfig(dwell_frames=3, hold_frames=2)


def test_the_edge_config_labels_section_is_this_dataclass_and_checks_its_values(tmp_path):
    from edge.config import load_config
    from latentcast.errors import UserError

    assert load_config().labels == HysteresisConfig()  # one default per knob
    cfg = load_config(overrides={"labels.dwell_frames": 3, "labels.hold_frames": 6})
    assert (cfg.labels.dwell_frames, cfg.labels.hold_frames) == (3, 6)
    bad = tmp_path / "bad.toml"
    bad.write_text("[labels]\ndwell_frames = 3\nhold_frames = 2\n")
    with pytest.raises(UserError, match=r"labels\.hold_frames must be at least labels\.dwell_frames"):
        load_config(bad)
    with pytest.raises(UserError, match=r"labels\.leave_margin"):
        load_config(overrides={"labels.leave_margin": 1.5})
