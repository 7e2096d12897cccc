"""Label frames of a recorded session and draw its contact sheet (the few-labels path, after recording).

    python -m edge.record sheet me.npz -o me.png                              # pick frames by eye
    python -m edge.record label me.npz --frames 10-40,55 --label smile        # then label them

Kept apart from the recorder (`edge/record.py`): labelling reads and rewrites a session file
(`latentcast.session`) and never touches a camera or a tracker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from latentcast.errors import UserError
from latentcast.session import PARTS, Session, check_part, load_session, save_session

log = logging.getLogger(__name__)


def parse_frames(spec: str, count: int) -> np.ndarray:
    """'10-40,55,60-62' -> sorted unique row numbers; ranges are inclusive; every row must exist."""
    rows: set[int] = set()
    for piece in spec.replace(" ", "").split(","):
        if not piece:
            continue
        try:
            if "-" in piece:
                first, last = (int(value) for value in piece.split("-", 1))
            else:
                first = last = int(piece)
        except ValueError:
            raise UserError(f"frames {piece!r} is not a number or a range: write e.g. 10-40,55") from None
        if first > last:
            raise UserError(f"frames {piece!r} runs backwards: write the smaller number first ({last}-{first})")
        if first < 0 or last >= count:
            raise UserError(f"frames {piece!r} are outside the session's 0-{count - 1}: see `info` or the sheet")
        rows.update(range(first, last + 1))
    if not rows:
        raise UserError("no frames given: write e.g. --frames 10-40,55")
    return np.array(sorted(rows), np.int64)


def label(session_path: str | os.PathLike[str], frames: str, name: str | None, part: str = "face") -> Session:
    """Give `frames` the label `name` (a new class name is appended) or, with name None, clear them."""
    session = load_session(session_path)
    part = check_part(part)
    rows = parse_frames(frames, len(session))
    classes = session.classes(part)
    labels = session.labels(part).copy()
    if name is None:
        labels[rows] = -1
    else:
        name = name.strip()
        if not name or "," in name:
            raise UserError(f"label {name!r} is not a usable class name: give a word like smile or open_palm")
        if name not in classes:
            classes.append(name)
        labels[rows] = classes.index(name)
        seen = session.arrays[f"{part}_present"][rows]
        if seen.ndim > 1:
            seen = seen.any(axis=1)
        if not seen.all():
            log.warning("%d of %d labelled frames have no %s: they will not be used", (~seen).sum(), len(rows), part)
    session.arrays[f"{part}_labels"] = labels
    session.arrays[f"{part}_classes"] = np.array(classes) if classes else np.zeros(0, "<U1")
    save_session(session.path, session.arrays)
    return session


def contact_sheet(
    session: Session, output: str | os.PathLike[str], frames: str | None = None, columns: int = 8
) -> Path:
    """A PNG grid of the stored thumbnails, each captioned with its row, labels and what was seen."""
    import cv2

    rows = session.arrays["thumb_rows"]
    thumbs = session.arrays["thumbs"]
    if len(rows) == 0:
        raise UserError(f"{session.path} has no thumbnails: record with --thumb-every N to keep some")
    if frames:
        wanted = set(parse_frames(frames, len(session)).tolist())
        keep = np.array([row in wanted for row in rows])
        rows, thumbs = rows[keep], thumbs[keep]
        if len(rows) == 0:
            raise UserError(f"no thumbnail within frames {frames}: thumbnails exist for every row in {{0, N, 2N...}}")
    height, width = thumbs.shape[1:3]
    columns = max(1, min(columns, len(rows)))
    grid_rows = -(-len(rows) // columns)
    caption = 30
    sheet = np.full((grid_rows * (height + caption), columns * width, 3), 255, np.uint8)
    face_classes, hand_classes = session.classes("face"), session.classes("hand")
    for k, (row, thumb) in enumerate(zip(rows, thumbs, strict=True)):
        top, left = (k // columns) * (height + caption), (k % columns) * width
        sheet[top : top + height, left : left + width] = thumb
        seen = ("F" if session.arrays["face_present"][row] else "") + "H" * int(
            session.arrays["hand_present"][row].sum()
        )
        names = [
            classes[labels[row]]
            for classes, labels in ((face_classes, session.labels("face")), (hand_classes, session.labels("hand")))
            if labels[row] >= 0
        ]
        text_color = (0, 0, 0)
        cv2.putText(sheet, f"{row} {seen}", (left + 3, top + height + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, text_color, 1)
        if names:
            cv2.putText(
                sheet, "/".join(names), (left + 3, top + height + 25), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 200), 1
            )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), sheet):
        raise UserError(f"could not write {output}: give a writable path ending in .png")
    return output


def describe(session: Session) -> str:
    """A few lines on what a session holds: frames, source, what was seen, thumbnails, label counts."""
    a = session.arrays
    width, height = (int(value) for value in a["image_size"])
    thumbs = ", ".join(str(int(row)) for row in a["thumb_rows"][:3]) + (", ..." if len(a["thumb_rows"]) > 3 else "")
    lines = [
        f"{session.path}: {len(session)} frames from {a['source']} ({width}x{height}, {float(a['fps']):.1f} fps), "
        f"feature spec {int(a['feature_spec_version'])}, recorded {a['recorded_at']}",
        f"face seen in {int(a['face_present'].sum())} frames; a hand in {int(a['hand_present'].any(axis=1).sum())}",
        f"thumbnails: {len(a['thumb_rows'])} (rows {thumbs or '-'})",
    ]
    for part in PARTS:
        labels = session.labels(part)
        counts = ", ".join(f"{name}={int((labels == k).sum())}" for k, name in enumerate(session.classes(part)))
        lines.append(f"{part} labels: {counts or 'none'} ({int((labels < 0).sum())} unlabelled)")
    return "\n".join(lines)
