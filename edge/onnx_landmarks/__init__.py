"""The `onnx` landmark backend: MediaPipe's face and hand graphs rebuilt around the converted models.

anchors (SSD decoding, weighted NMS) -> roi (rotated crops and projection) -> detector (the
SSD step both detectors share) -> hands / face (the models and their outputs) -> geometry (facial
transformation matrix) -> tracker (tracking with background detection) -> trackers (the
observation dataclasses the MediaPipe trackers return). docs/LANDMARKS.md describes the pipeline
and its parity with MediaPipe.
"""
