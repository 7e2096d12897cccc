"""TFLite side of the landmark export; runs inside the converter venv (.venv-convert), never imports latentcast.

Why a separate interpreter: tensorflow-cpu and tf2onnx are 1.7 GB of workstation-only tools that
the device must never see, and keeping them out of .venv keeps TensorFlow away from the training and
edge code paths. `export.landmark_models` runs this file as a subprocess, with `-I` (export/onnx.py beside this
file would otherwise shadow the `onnx` package):

    .venv-convert/bin/python -I export/landmark_convert_worker.py convert --job job.json
    .venv-convert/bin/python -I export/landmark_convert_worker.py run --job runs.json

`convert` checks every model's input shape first (a wrong one is a one-line `ERROR:` on stderr and
exit code 2), then converts each with tf2onnx (the Python API of `python -m tf2onnx.convert --tflite`).
`run` feeds each sample of each input set (one batch-1 call per sample) to the TFLite interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


class WrongModel(Exception):
    """A .task member is not the model the export expects."""


def interpreter(path: str):
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    return interp


def check_input(path: str, name: str, expected: list[int]) -> None:
    """The TFLite model's input must be [batch, *expected]; batch is 1 or dynamic (-1)."""
    details = interpreter(path).get_input_details()
    if len(details) != 1:
        raise WrongModel(f"{name}: expected 1 input, the .tflite has {len(details)}")
    signature = [int(d) for d in details[0].get("shape_signature", details[0]["shape"])]
    if signature[1:] != list(expected) or signature[0] not in (1, -1):
        raise WrongModel(
            f"{name}: input shape {signature}, expected [1, {', '.join(map(str, expected))}] "
            "(is this .task a different MediaPipe release?)"
        )


def convert(job: dict) -> dict:
    import tensorflow as tf
    import tf2onnx

    for model in job["models"]:
        check_input(model["tflite"], model["name"], model["input_shape"])
    for model in job["models"]:
        tf2onnx.convert.from_tflite(model["tflite"], opset=job["opset"], output_path=model["onnx"])
    return {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "opset": job["opset"]}


def run(job: dict) -> None:
    """Each entry {tflite, inputs, out}: every sample of inputs["x"] through the TFLite interpreter, one call each."""
    for entry in job["runs"]:
        interp = interpreter(entry["tflite"])
        (detail,) = interp.get_input_details()
        outputs = interp.get_output_details()
        samples = np.load(entry["inputs"])["x"]
        results: dict[str, list[np.ndarray]] = {o["name"]: [] for o in outputs}
        for sample in samples:
            interp.set_tensor(detail["index"], sample[None].astype(np.float32))
            interp.invoke()
            for o in outputs:
                results[o["name"]].append(interp.get_tensor(o["index"]).copy())
        np.savez(entry["out"], **{name: np.stack(values) for name, values in results.items()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--job", required=True, help="JSON: {opset, models: [{name, tflite, onnx, input_shape}]}")
    r = sub.add_parser("run")
    r.add_argument("--job", required=True, help="JSON: {runs: [{tflite, inputs (.npz with x [N, ...]), out}]}")
    args = parser.parse_args()
    try:
        with open(args.job) as stream:
            job = json.load(stream)
        if args.action == "convert":
            versions = convert(job)
            with open(job["versions_out"], "w") as stream:
                json.dump(versions, stream)
        else:
            run(job)
    except WrongModel as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
