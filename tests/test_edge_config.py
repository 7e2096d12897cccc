"""The edge TOML config: defaults load, overrides apply, every mistake names its key."""

from __future__ import annotations

import pytest

from edge.config import DEFAULT_CONFIG, defaults, load_config
from latentcast.errors import UserError


def test_defaults_load_and_a_user_file_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('[source]\nuri = "file://clip.mp4"\n[filter]\nbeta = 0.5\n')
    cfg = load_config(path)
    assert cfg.source.uri == "file://clip.mp4" and cfg.filter.beta == 0.5
    assert cfg.filter.min_cutoff == load_config().filter.min_cutoff
    assert DEFAULT_CONFIG.is_file()


def test_command_line_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('[stream]\nendpoint = "tcp://*:6000"\n')
    cfg = load_config(path, {"stream.endpoint": "tcp://*:7000", "parts.face": False})
    assert cfg.stream.endpoint == "tcp://*:7000" and cfg.parts.face is False


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[filter]\nbeta = "x"', 'config: filter.beta must be a number, got "x"'),
        ("[filter]\nbeta = -1", "config: filter.beta must be a number >= 0, got -1.0"),
        ("[filter]\nmin_cutoff = 0", "config: filter.min_cutoff must be a number > 0"),
        ("[source]\nfps = true", "config: source.fps must be a number, got True"),
        ('[source]\npace = "slow"', 'config: source.pace must be "native" or "fast", got "slow"'),
        ("[landmarks]\nmax_hands = 9", "config: landmarks.max_hands must be an integer from 1 to 4, got 9"),
        ("[parts]\nmax_hands = 2", "config: unknown key parts.max_hands .*: it is now landmarks.max_hands"),
        ("[budget]\nprofile = 'default'", r"config: unknown section \[budget\]"),
        ('[stream]\nendpoint = "localhost"', "config: stream.endpoint must be a ZeroMQ endpoint"),
        ("[bundle]\nproviders = [1]", "config: bundle.providers must be a list of strings"),
        ('[bundle]\nprecision = "int4"', 'config: bundle.precision must be "auto", "int8" or "fp32", got "int4"'),
        ("[filter]\nbetta = 1.0", "config: unknown key filter.betta"),
        ("[camera]\nuri = 'x'", r"config: unknown section \[camera\]"),
        ("[parts]\nface = false\nhands = false", "parts.face and parts.hands are both false"),
        ("[source\nuri = 1", "is not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path, toml, message):
    path = tmp_path / "edge.toml"
    path.write_text(toml)
    with pytest.raises(UserError, match=message):
        load_config(path)


def test_missing_config_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_auto_precision_picks_int8_only_where_tensorrt_runs_it():
    """Explicit precisions hold everywhere; "auto" is INT8 exactly where TensorRT runs the encoder.

    Holds on the device too: where TensorRT is present the INT8 half is asserted and the FP32 half skips.
    """
    import importlib.util

    import onnxruntime

    from edge.stages import wants_int8

    assert wants_int8("int8", ["cpu"]) is True
    assert wants_int8("fp32", ["tensorrt"]) is False
    if importlib.util.find_spec("tensorrt") is not None:
        assert wants_int8("auto", None) is True and wants_int8("auto", ["cpu"]) is True  # native engines
        pytest.skip("TensorRT is installed here: 'auto' picks INT8 (asserted); the FP32 half needs a host without")
    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        assert wants_int8("auto", None) is True  # onnxruntime's TensorRT provider runs the QDQ graph
        assert wants_int8("auto", ["cpu"]) is False  # ... unless the caller excludes it
        pytest.skip("onnxruntime has the TensorRT provider here: the no-TensorRT half needs a host without")
    assert wants_int8("auto", None) is False
    assert wants_int8("auto", ["cpu"]) is False
    assert wants_int8("int8", ["cpu"]) is True
    assert wants_int8("fp32", ["tensorrt"]) is False


def test_default_toml_documents_exactly_the_dataclass_defaults():
    """One default per knob: the component dataclasses hold it, edge/default.toml must say the same."""
    import tomllib

    with open(DEFAULT_CONFIG, "rb") as stream:
        assert tomllib.load(stream) == defaults()


def test_each_section_is_the_dataclass_its_component_takes():
    from edge.capture import SourceSettings
    from edge.filters import OneEuroParams
    from edge.landmarks import LandmarkerConfig

    cfg = load_config(overrides={"landmarks.max_hands": 1, "filter.beta": 0.2, "source.width": 640})
    assert isinstance(cfg.source, SourceSettings) and cfg.source.width == 640
    assert isinstance(cfg.filter, OneEuroParams) and cfg.filter == OneEuroParams(beta=0.2)
    assert isinstance(cfg.landmarks, LandmarkerConfig) and cfg.landmarks.max_hands == 1
    assert cfg.landmarks.face_model is None  # set from the bundle by code, not a TOML knob
    assert load_config().filter == OneEuroParams()  # the edge and the filter agree on beta
