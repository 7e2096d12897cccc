"""The exported decoders of a bundle, and the check that a message was made by that bundle.

The wire carries latents (y, z), not features. Decoding them needs the decoder of the *same*
trained model, so every message names its model (8 bytes of sha256 of the bundle manifest, see
`latentcast.protocol.model_id_from_manifest`); messages of another model are counted and their
latents ignored rather than decoded into nonsense.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentcast import open_set
from latentcast.bundle import Bundle, open_bundle
from latentcast.errors import UserError
from latentcast.inference import DecoderSession
from latentcast.protocol import NO_MODEL

log = logging.getLogger(__name__)


@dataclass
class PartDecoder:
    """One model's decoder with the class names and the open-set block from its model card."""

    name: str
    classes: list[str]
    session: DecoderSession
    open_set: dict | None = None  # the card's "open_set" block when it holds a rule (else None)

    @property
    def code_dim(self) -> int:
        return int(self.session.code_dim)

    def __call__(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """y [K], z [C] -> features [D] (one row)."""
        return self.session(y, z)[0]

    def valid(self, y: np.ndarray, z: np.ndarray) -> bool:
        return (
            y.size == len(self.classes)
            and z.size == self.code_dim
            and bool(np.isfinite(y).all() and np.isfinite(z).all())
        )


def _open_set_block(name: str, card: dict) -> dict | None:
    """The card's open-set block if it holds a rule (checked now, not on the first frame), else None."""
    block = card.get("open_set") or None
    try:
        rule = open_set.confidence_rule(block)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} model card: {exc}: retrain the model or rebuild the bundle") from None
    return dict(block) if rule is not None else None


def _part_decoder(bundle: Bundle, name: str | None, providers) -> PartDecoder | None:
    """The decoder of model `name` with its card's classes and open-set block (None: no such model)."""
    if name is None:
        return None
    card = bundle.model_card(name)
    session = DecoderSession(bundle.decoder(name), threads=1, providers=providers)
    classes = list(card["classes"])
    if session.n_classes not in (None, len(classes)):
        raise UserError(
            f"{name} decoder has {session.n_classes} classes, its model card {len(classes)}: rebuild the bundle"
        )
    return PartDecoder(name, classes, session, _open_set_block(name, card))


class BundleDecoders:
    """Decoders for the face (expression) and hands (gesture), whichever the bundle has."""

    def __init__(self, face: PartDecoder | None, hand: PartDecoder | None, model_id: bytes) -> None:
        self.face, self.hand, self.model_id = face, hand, model_id
        self.mismatched = 0

    @classmethod
    def from_bundle(cls, path: str | Path, providers=None) -> BundleDecoders:
        bundle = open_bundle(path)
        bundle.check_feature_spec()  # retargeting reads features by position: refuse a layout it does not know
        face, hand = (_part_decoder(bundle, bundle.model_for(part), providers) for part in ("face", "hands"))
        names = ", ".join(p.name for p in (face, hand) if p is not None) or "none"
        log.info("bundle %s: models %s, model id %s", bundle.root, names, bundle.model_id.hex())
        return cls(face, hand, bundle.model_id)

    def accepts(self, model_id: bytes) -> bool:
        """True when latents tagged `model_id` were made by this bundle's encoders."""
        if model_id == self.model_id:
            return True
        if model_id != NO_MODEL:
            self.mismatched += 1
            if self.mismatched % 1000 == 1:
                log.warning(
                    "ignoring latents of model %s (this renderer has %s; %d message(s)): give the renderer "
                    "the bundle the edge runs",
                    model_id.hex(),
                    self.model_id.hex(),
                    self.mismatched,
                )
        return False
