"""The landmark datasets' former single module, now three (one idea each); names re-exported here.

    aae/datasets.py     labelled rows, stratified splits, the few-labels pick (shared)
    aae/hand_data.py    the shared hand CSVs, THE held-out hand test split, augmentation
    aae/face_data.py    the face photos (MediaPipe cached) and recorded sessions
    aae/face_recipe.py  the face synthesis recipe (docs/DATA.md) and `expression_dataset`

New code imports from those modules; this one keeps older callers working while they move.
"""

from __future__ import annotations

from aae.datasets import LabelledSet, pick_labelled, read_image_asset, stratified_split
from aae.face_data import (
    EXPRESSION_CLASSES,
    FACE_FEATURE_DIM,
    LONDON_IDS,
    Face,
    FacePhoto,
    face_from_asset,
    face_photos,
    landmark_cache_dir,
    load_faces,
    load_session,
)
from aae.face_recipe import (
    SmileDirection,
    close_eyes,
    expression_dataset,
    from_head_frame,
    morph,
    open_jaw,
    raise_brows,
    smile_direction,
    synthesize,
    to_head_frame,
)
from aae.hand_data import (
    HAND_FEATURE_DIM,
    HAND_SETS,
    HAND_TEST_FRACTION,
    KINIVI_TO_BARON,
    augment_hands,
    hand_features_from_image,
    hand_features_from_video,
    hand_test_split,
    load_hand_set,
    load_kinivi_as_baron,
    read_keypoint_csv,
    read_labels,
    remap,
    split_hand_set,
)

__all__ = [
    "EXPRESSION_CLASSES",
    "FACE_FEATURE_DIM",
    "HAND_FEATURE_DIM",
    "HAND_SETS",
    "HAND_TEST_FRACTION",
    "KINIVI_TO_BARON",
    "LONDON_IDS",
    "Face",
    "FacePhoto",
    "LabelledSet",
    "SmileDirection",
    "augment_hands",
    "close_eyes",
    "expression_dataset",
    "face_from_asset",
    "face_photos",
    "from_head_frame",
    "hand_features_from_image",
    "hand_features_from_video",
    "hand_test_split",
    "landmark_cache_dir",
    "load_faces",
    "load_hand_set",
    "load_kinivi_as_baron",
    "load_session",
    "morph",
    "open_jaw",
    "pick_labelled",
    "raise_brows",
    "read_image_asset",
    "read_keypoint_csv",
    "read_labels",
    "remap",
    "smile_direction",
    "split_hand_set",
    "stratified_split",
    "synthesize",
    "to_head_frame",
]
