"""The edge's own landmark models (MediaPipe's TFLite models converted to ONNX): names, files, inputs.

One table for the three places that must agree on it: `export.landmark_models` converts and
quantizes these models, `calibration.landmark_crops` cuts real inputs for them, and the edge's
`onnx` landmark backend runs them from a bundle (`latentcast.bundle.Bundle.landmark_onnx`).
Input ranges are MediaPipe's ImageToTensor settings; I/O names and outputs: docs/EXPORT.md.
"""

from __future__ import annotations

from dataclasses import dataclass

GEOMETRY_FILE = "geometry_pipeline_metadata_landmarks.binarypb"  # the canonical face, from the face .task

# face_blendshapes_graph.cc kLandmarksSubsetIdxs: the 146 of 478 face landmarks the blendshape model reads.
BLENDSHAPE_SUBSET = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70,
    78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149,
    150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195,
    197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300,
    308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375,
    377, 378, 379, 380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454,
    466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
)  # fmt: skip


@dataclass(frozen=True)
class LandmarkModel:
    """One model inside a MediaPipe `.task`: its input (without the batch axis) and its pixel range."""

    name: str  # member stem inside the .task and the ONNX file stem
    task: str  # "face" or "hand"
    input_shape: tuple[int, ...]
    input_range: tuple[float, float] | None  # pixel value range the model expects (None: not an image)
    dynamic_batch: bool = False  # True: ONNX batch axis "batch" (both hands in one call), else fixed 1

    @property
    def side(self) -> int:
        """The square input's side in pixels (image models)."""
        return self.input_shape[0]

    @property
    def member(self) -> str:
        return f"{self.name}.tflite"

    @property
    def onnx_name(self) -> str:
        return f"{self.name}.onnx"

    @property
    def int8_name(self) -> str:
        return f"{self.name}.int8.onnx"


LANDMARK_MODELS = (
    LandmarkModel("hand_detector", "hand", (192, 192, 3), (0.0, 1.0)),
    LandmarkModel("hand_landmarks_detector", "hand", (224, 224, 3), (0.0, 1.0), dynamic_batch=True),
    LandmarkModel("face_detector", "face", (128, 128, 3), (-1.0, 1.0)),
    LandmarkModel("face_landmarks_detector", "face", (256, 256, 3), (0.0, 1.0)),
    LandmarkModel("face_blendshapes", "face", (146, 2), None),  # image-pixel x, y of 146 face landmarks
)
LANDMARK_MODEL_BY_NAME = {m.name: m for m in LANDMARK_MODELS}
