"""Real model inputs for the five landmark models: for TFLite/ONNX parity and INT8 calibration.

Why real crops: INT8 ranges calibrated on noise, or parity checked on noise, say nothing about the
pixels the edge feeds. Every input here comes from the mirror's real media through
`latentcast.assets`: frames of the shared hand clip, the hand photos and the face photos (London
set, lisa, the MediaPipe samples). MediaPipe itself (edge.landmarks, image mode) says where the
hands and faces are; each crop is then cut the way MediaPipe's graphs cut it:

- detectors: the whole frame letterboxed (aspect kept, zero padding) to the model's square input;
- landmark models: a square ROI around MediaPipe's landmarks, rotated upright (hand: wrist -> middle
  MCP points up, side 2.0x the landmark box, shifted 0.1 of the side towards the fingers; face:
  eye line level, side 1.5x), affine-warped to 224 (hand) or 256 (face);
- blendshapes: MediaPipe's 146-landmark subset in image pixels (x * width, y * height).

Pixel ranges are each model's (`latentcast.landmark_models`): 0..1, or -1..1 for the face detector.
The user's own recordings (video files: `videos`) add hand and face crops. A recorded landmark
session (edge/record.py .npz) holds no pixels, so it cannot calibrate these image models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentcast.assets import catalog_keys, resolve, sha256_of
from latentcast.errors import UserError
from latentcast.landmark_models import BLENDSHAPE_SUBSET, LANDMARK_MODEL_BY_NAME

CLIP_KEY = "data/video/hand_landmarker_test_video.mp4"
HAND_PHOTO_PREFIX = "data/images/hands/"

HAND_ROI_SCALE, HAND_ROI_SHIFT_Y = 2.0, -0.1  # HandLandmarksToRect + RectTransformation (hand_landmarker_graph)
FACE_ROI_SCALE = 1.5  # face_landmarker_graph.cc
FACE_EYE_CORNERS = (33, 263)  # the eye line that makes a face crop upright
_SIDE = {name: model.side for name, model in LANDMARK_MODEL_BY_NAME.items() if model.input_range}  # image models


@dataclass
class LandmarkCrops:
    """Per model name, real inputs [N, *input shape] float32 in that model's range; and where they came from.

    `origin[name][i]`: which source image row i was cut from (a photo and its mirror image share one);
    `jittered[name][i]`: row i is a jittered copy (calibration only, never measured on).
    """

    inputs: dict[str, np.ndarray]
    sources: list[dict] = field(default_factory=list)
    origin: dict[str, np.ndarray] = field(default_factory=dict)
    jittered: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, per_model: int) -> LandmarkCrops:
        """At most `per_model` inputs of each model, spread evenly over the set (for a quick parity check)."""
        picked = {}
        for name, x in self.inputs.items():
            plain = np.flatnonzero(~self.jittered[name]) if name in self.jittered else np.arange(len(x))
            index = plain[np.unique(np.linspace(0, len(plain) - 1, min(per_model, len(plain))).round().astype(int))]
            picked[name] = x[index]
        return LandmarkCrops(picked, self.sources)

    def split(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(calibration, held-out) inputs per model, split by source image: even sources (with their jittered
        copies) calibrate, odd ones measure, so no held-out crop shares pixels with a calibration crop."""
        calibrate, held_out = {}, {}
        for name, x in self.inputs.items():
            origin = self.origin.get(name, np.arange(len(x)))
            jittered = self.jittered.get(name, np.zeros(len(x), bool))
            calibrate[name] = x[origin % 2 == 0]
            held_out[name] = x[(origin % 2 == 1) & ~jittered]
        return calibrate, held_out


def read_rgb(key: str) -> np.ndarray:
    """An image asset as RGB uint8 [H, W, 3]."""
    import cv2

    image = cv2.imread(str(resolve(key)), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{key} could not be decoded as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def clip_frames(count: int, key: str = CLIP_KEY) -> list[np.ndarray]:
    """`count` RGB frames spread evenly over the shared hand clip."""
    return video_frames(resolve(key), count)


def video_frames(path: str | Path, count: int) -> list[np.ndarray]:
    """`count` RGB frames spread evenly over a video file (a UserError when it cannot be read)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UserError(f"{path} is not a readable video: give a recording such as an .mp4")
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(np.linspace(0, max(total - 1, 0), count).round().astype(int).tolist())
        frames, index = [], 0
        while len(frames) < len(wanted):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    return frames


def to_range(rgb: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 pixels -> float32 in `value_range` (MediaPipe's ImageToTensor output range)."""
    low, high = value_range
    return (rgb.astype(np.float32) / 255.0 * (high - low) + low).astype(np.float32)


def letterbox(rgb: np.ndarray, size: int) -> np.ndarray:
    """The whole frame in a size x size square, aspect kept, centred, black padding (the detectors' input)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def rotated_crop(rgb: np.ndarray, center: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """The square of `side` pixels centred at `center`, rotated by `angle` radians, warped to size x size."""
    import cv2

    c, s = np.cos(angle), np.sin(angle)
    # source point for crop pixel (u, v): center + R(angle) @ ((u, v) / size - 0.5) * side
    k = side / size
    matrix = np.array(
        [[c * k, -s * k, center[0] - k * (c - s) * size / 2], [s * k, c * k, center[1] - k * (s + c) * size / 2]]
    )
    return cv2.warpAffine(
        rgb, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


Roi = tuple[np.ndarray, float, float]  # (centre in pixels, side in pixels, angle in radians)


def hand_roi(rgb: np.ndarray, landmarks: np.ndarray) -> Roi:
    """MediaPipe-style hand ROI from normalised landmarks [21, 3]: upright, 2x the landmark box."""
    h, w = rgb.shape[:2]
    pts = landmarks[:, :2] * (w, h)
    up = pts[9] - pts[0]  # wrist -> middle finger MCP
    angle = np.arctan2(up[1], up[0]) + np.pi / 2  # rotate so that this vector points up in the crop
    return _rotated_box(pts, angle, HAND_ROI_SCALE, HAND_ROI_SHIFT_Y)


def face_roi(rgb: np.ndarray, landmarks: np.ndarray) -> Roi:
    """MediaPipe-style face ROI from normalised landmarks [478, 3]: eye line level, 1.5x the landmark box."""
    h, w = rgb.shape[:2]
    pts = landmarks[:, :2] * (w, h)
    eye = pts[FACE_EYE_CORNERS[1]] - pts[FACE_EYE_CORNERS[0]]
    return _rotated_box(pts, float(np.arctan2(eye[1], eye[0])), FACE_ROI_SCALE)


def _rotated_box(pts: np.ndarray, angle: float, scale: float, shift_y: float = 0.0) -> Roi:
    """The square ROI around pixel points `pts` in a frame turned by `angle`: `scale` x the longer side of
    their box there, its centre moved by `shift_y` x the side along the turned frame's y axis."""
    c, s = np.cos(-angle), np.sin(-angle)
    local = (pts - pts.mean(0)) @ np.array([[c, s], [-s, c]])
    side = float(max(local.max(0) - local.min(0))) * scale
    center_local = (local.max(0) + local.min(0)) / 2 + (0.0, shift_y * side)
    cc, ss = np.cos(angle), np.sin(angle)
    return pts.mean(0) + np.array([[cc, -ss], [ss, cc]]) @ center_local, side, float(angle)


def jittered_roi(roi: Roi, rng: np.random.Generator) -> Roi:
    """The ROI moved as the edge's tracking moves it frame to frame: shift <= 8 % of the side, scale
    0.9-1.1, rotation <= 10 degrees. More varied crops of the same real pixels for calibration."""
    center, side, angle = roi
    shift = rng.uniform(-0.08, 0.08, 2) * side
    return center + shift, side * rng.uniform(0.9, 1.1), angle + np.radians(rng.uniform(-10, 10))


def hand_crop(rgb: np.ndarray, landmarks: np.ndarray, size: int = _SIDE["hand_landmarks_detector"]) -> np.ndarray:
    """MediaPipe-style hand ROI from normalised landmarks [21, 3], warped to the model's input."""
    return rotated_crop(rgb, *hand_roi(rgb, landmarks), size)


def face_crop(rgb: np.ndarray, landmarks: np.ndarray, size: int = _SIDE["face_landmarks_detector"]) -> np.ndarray:
    """MediaPipe-style face ROI from normalised landmarks [478, 3], warped to the model's input."""
    return rotated_crop(rgb, *face_roi(rgb, landmarks), size)


def blendshape_points(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The blendshape model's input [146, 2]: the subset's x, y in image pixels."""
    w, h = image_size
    return (landmarks[list(BLENDSHAPE_SUBSET), :2] * (w, h)).astype(np.float32)


def hand_images(clip_count: int) -> list[tuple[str, np.ndarray]]:
    """(source, RGB frame) of the clip frames and the hand photos."""
    keys = [k for k in catalog_keys(HAND_PHOTO_PREFIX) if k.lower().endswith((".jpg", ".jpeg", ".png"))]
    images = [(f"{CLIP_KEY}#{i}", frame) for i, frame in enumerate(clip_frames(clip_count))]
    return images + [(key, read_rgb(key)) for key in keys]


def build_crops(
    clip_count: int = 24,
    face_photo_limit: int | None = None,
    videos: Sequence[Path] = (),
    video_frames_each: int = 24,
    jitter: int = 0,
    mirror: bool = False,
    seed: int = 0,
) -> LandmarkCrops:
    """Real inputs for every landmark model from the clip, the hand photos and the face photos, plus
    `video_frames_each` frames of each of the user's own recordings in `videos` (hands and faces).

    `mirror` adds each image's mirror image (a left hand becomes a right one; MediaPipe finds it again);
    `jitter` adds that many copies of every hand and face crop with the ROI moved as tracking moves it
    (`jittered`), for calibration.
    """
    from aae import face_data
    from edge.landmarks import FaceTracker, HandTracker, LandmarkerConfig

    def rng(name: str) -> tuple[float, float]:
        return LANDMARK_MODEL_BY_NAME[name].input_range

    def whole_frame(rgb: np.ndarray, name: str) -> np.ndarray:  # a detector's input: the letterboxed frame
        return to_range(letterbox(rgb, _SIDE[name]), rng(name))

    random = np.random.default_rng(seed)
    inputs: dict[str, list[np.ndarray]] = {name: [] for name in LANDMARK_MODEL_BY_NAME}
    origin: dict[str, list[int]] = {name: [] for name in LANDMARK_MODEL_BY_NAME}
    jittered: dict[str, list[bool]] = {name: [] for name in LANDMARK_MODEL_BY_NAME}

    def add(name: str, x: np.ndarray, source: int, moved: bool = False) -> None:
        inputs[name].append(x)
        origin[name].append(source)
        jittered[name].append(moved)

    def add_crops(name: str, rgb: np.ndarray, roi: Roi, source: int) -> None:
        for k, r in enumerate([roi, *(jittered_roi(roi, random) for _ in range(jitter))]):
            add(name, to_range(rotated_crop(rgb, *r, _SIDE[name]), rng(name)), source, k > 0)

    def views(rgb: np.ndarray) -> list[np.ndarray]:
        return [rgb, np.ascontiguousarray(rgb[:, ::-1])] if mirror else [rgb]

    hands = hand_images(clip_count)
    recorded = [(f"{path}#{i}", f) for path in videos for i, f in enumerate(video_frames(path, video_frames_each))]
    hands += recorded
    first_recorded = len(hands) - len(recorded)
    with FaceTracker(LandmarkerConfig(mode="image", color_order="rgb")) as tracker:
        for i, (_, frame) in enumerate(recorded):
            for rgb in views(frame):
                face = tracker.detect(rgb)
                if face.present:
                    add_crops("face_landmarks_detector", rgb, face_roi(rgb, face.landmarks), first_recorded + i)
                    add("face_blendshapes", blendshape_points(face.landmarks, face.image_size), first_recorded + i)
    with HandTracker(LandmarkerConfig(mode="image", color_order="rgb")) as tracker:
        for i, (_, frame) in enumerate(hands):
            for rgb in views(frame):
                for hand in tracker.detect(rgb):
                    if hand.present:
                        add_crops("hand_landmarks_detector", rgb, hand_roi(rgb, hand.landmarks), i)
    faces = face_data.load_faces(face_data.face_photos()[:face_photo_limit])
    with FaceTracker(LandmarkerConfig(mode="image", color_order="rgb")) as tracker:  # mirror images of the photos
        for i, (photo, face) in enumerate(faces):
            source = len(hands) + i
            frame = read_rgb(photo.key)
            found = [(frame, face)]
            if mirror:
                flipped = np.ascontiguousarray(frame[:, ::-1])
                other = tracker.detect(flipped)
                if other.present:
                    found.append((flipped, other))
            for rgb, seen in found:
                add_crops("face_landmarks_detector", rgb, face_roi(rgb, seen.landmarks), source)
                add("face_blendshapes", blendshape_points(seen.landmarks, seen.image_size), source)
            add("face_detector", whole_frame(frame, "face_detector"), source)
            add("hand_detector", whole_frame(frame, "hand_detector"), source)  # negatives
    for i, (_, rgb) in enumerate(hands):
        add("hand_detector", whole_frame(rgb, "hand_detector"), i)
        add("face_detector", whole_frame(rgb, "face_detector"), i)
    keys = sorted({key.split("#")[0] for key, _ in hands[:first_recorded]} | {p.key for p, _ in faces})
    sources = [{"asset": key, "sha256": sha256_of(resolve(key))} for key in keys]
    sources += [{"video": str(path), "sha256": sha256_of(Path(path)), "frames": video_frames_each} for path in videos]
    counts = {
        "clip_frames": clip_count,
        "hand_crops": len(inputs["hand_landmarks_detector"]),
        "faces": len(faces),
        "jitter": jitter,
        "mirror": mirror,
    }
    sources.append(counts)
    names = [name for name, x in inputs.items() if x]
    return LandmarkCrops(
        {name: np.stack(inputs[name]) for name in names},
        sources,
        {name: np.array(origin[name]) for name in names},
        {name: np.array(jittered[name]) for name in names},
    )
