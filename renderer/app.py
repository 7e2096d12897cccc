"""The renderer host loop: subscribe, animate, draw and/or forward over VMC, measure latency.

One loop, no threads: wait for the next latent message until the next frame is due (so a new
message is drawn the moment it arrives, and idle motion keeps running at `fps` when none come),
animate, draw, send VMC, write the frame. Everything recoverable (bad messages, VMC send errors)
is counted in the summary, never fatal.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentcast.errors import UserError
from latentcast.protocol import TOPIC_PREVIEW, LatentMessage
from latentcast.subscriber import CurveClientKeys, LatentSubscriber
from renderer.animate import Animator, AnimatorConfig
from renderer.character import CharacterRenderer
from renderer.decode import BundleDecoders
from renderer.latency import Histogram, LatencyTracker, same_host
from renderer.output import FrameOutput, open_output
from renderer.vmc import VMCConfig, VMCSender
from renderer.web import WebConfig, WebRenderer

log = logging.getLogger(__name__)


@dataclass
class RendererConfig:
    endpoint: str = "tcp://127.0.0.1:5555"
    bundle: Path | None = None  # None: no decoders (pose, wrists and idle motion only)
    preview_endpoint: str | None = None  # the edge's preview socket, for --side-by-side
    side_by_side: bool = False
    vmc: VMCConfig | None = None
    web: WebConfig | None = None  # also serve the browser (three-vrm) renderer: page + WebSocket
    out: str | None = None  # display://0, a .mp4/.avi, a PNG folder; None: a window if there is a display
    still: Path | None = None  # also save one representative tracked frame as PNG
    frames: int | None = None  # stop after this many rendered frames
    duration_s: float | None = None  # ... or after this long
    exit_after_silence_s: float | None = None  # stop when the stream has been silent this long (after a message)
    start_on_message: bool = False  # render nothing until the first message (demo videos start with the action)
    fps: float = 30.0
    width: int = 640
    height: int = 360
    mirror: bool = True
    curve: CurveClientKeys | None = None
    animator: AnimatorConfig = field(default_factory=AnimatorConfig)


@dataclass
class _Preview:
    frames: deque = field(default_factory=lambda: deque(maxlen=8))  # (seq, BGR image)
    shown: np.ndarray | None = None
    received: int = 0

    def pick(self, seq: int | None) -> np.ndarray | None:
        for s, image in reversed(self.frames):
            if seq is None or s <= seq:
                self.shown = image
                break
        return self.shown


def _placeholder(height: int, width: int, text: str) -> np.ndarray:
    import cv2

    img = np.full((height, width, 3), 40, np.uint8)
    cv2.putText(img, text, (20, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (200, 200, 200), 1, cv2.LINE_AA)
    return img


def compose_side_by_side(preview: np.ndarray | None, character: np.ndarray) -> np.ndarray:
    """Input frame (scaled to the character's height) | character."""
    import cv2

    h, w = character.shape[:2]
    if preview is None:
        left = _placeholder(h, w, "waiting for the edge preview")
    else:
        scale = h / preview.shape[0]
        left = cv2.resize(preview, (max(1, round(preview.shape[1] * scale)), h), interpolation=cv2.INTER_AREA)
    return np.hstack([left, character])


class RendererHost:
    """Owns the sockets, the animator, the drawing and the outputs for one run."""

    def __init__(self, config: RendererConfig) -> None:
        self.config = config
        cfg = config
        self.decoders = BundleDecoders.from_bundle(cfg.bundle) if cfg.bundle else None
        self.animator = Animator(self.decoders, cfg.animator)
        self.drawer = CharacterRenderer(cfg.width, cfg.height, mirror=cfg.mirror)
        self.latency = LatencyTracker(same_clock=same_host(cfg.endpoint))
        self.sub = LatentSubscriber(cfg.endpoint, curve=cfg.curve)
        self.preview_sub = None
        if cfg.side_by_side:
            if not cfg.preview_endpoint:
                raise UserError(
                    "--side-by-side needs the edge's preview socket: pass --preview-endpoint tcp://HOST:5556"
                )
            self.preview_sub = LatentSubscriber(
                cfg.preview_endpoint, topic=TOPIC_PREVIEW, curve=cfg.curve, context=self.sub._context
            )
        self.preview = _Preview()
        self.vmc = VMCSender(cfg.vmc) if cfg.vmc else None
        self.web = WebRenderer(cfg.web).start() if cfg.web else None
        self.output: FrameOutput | None = open_output(cfg.out, cfg.fps)
        self.still_candidates: list[np.ndarray] = []
        self.rendered = 0
        self.tracked_rendered = 0

    def _poll_preview(self) -> None:
        import cv2

        if self.preview_sub is None:
            return
        msg = self.preview_sub.latest()
        if msg is not None:
            image = cv2.imdecode(np.frombuffer(msg.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if image is not None:
                self.preview.frames.append((msg.seq, image))
                self.preview.received += 1

    def _keep_still(self, frame: np.ndarray) -> None:
        """Keep every 10th tracked frame (thinned to 32) so the still is from the middle of the action."""
        self.tracked_rendered += 1
        if self.config.still is not None and self.tracked_rendered % 10 == 1:
            self.still_candidates.append(frame.copy())
            if len(self.still_candidates) > 32:
                self.still_candidates = self.still_candidates[::2]

    def run(self) -> dict:
        cfg = self.config
        period = 1.0 / cfg.fps
        start = last = time.monotonic()
        last_message_at: float | None = None
        render_times = Histogram()  # bounded: a run of any length costs the same memory
        had_message = False
        try:
            while True:
                now = time.monotonic()
                if cfg.frames is not None and self.rendered >= cfg.frames:
                    break
                if cfg.duration_s is not None and now - start >= cfg.duration_s:
                    break
                if (
                    cfg.exit_after_silence_s is not None
                    and last_message_at is not None
                    and now - last_message_at > cfg.exit_after_silence_s
                ):
                    log.info("stream silent for %.1f s: stopping", cfg.exit_after_silence_s)
                    break
                # Right after a message, allow a late next one half a period before drawing idle motion.
                wait_ms = max(0, int((last + period * (1.5 if had_message else 1.0) - now) * 1000))
                msg: LatentMessage | None = self.sub.recv(wait_ms)
                newer = self.sub.latest()
                msg = newer or msg
                receive_ns = time.monotonic_ns()
                if cfg.start_on_message and last_message_at is None:
                    self._poll_preview()
                    no_preview_yet = self.preview_sub is not None and not self.preview.frames
                    if msg is None or no_preview_yet:
                        start = last = time.monotonic()  # the run (and its duration) starts with the stream
                        continue
                had_message = msg is not None
                if msg is not None:
                    last_message_at = time.monotonic()
                    self.latency.received(msg.seq, msg.publish_ns, receive_ns, msg.capture_ns)
                start_ns = time.monotonic_ns()
                t = time.monotonic()
                dt, last = min(t - last, 0.25), t
                frame, params = self._frame(msg, dt, t - start)
                done_ns = time.monotonic_ns()
                render_times.add((done_ns - start_ns) / 1e6)
                if msg is not None:
                    self.latency.rendered(msg.capture_ns, msg.publish_ns, receive_ns, start_ns, done_ns)
                if self.output is not None:
                    self.output.write(frame)
                    if self.output.closed_by_user:
                        break
                if params.idle < 0.5:
                    self._keep_still(frame)
                self.rendered += 1
        except KeyboardInterrupt:
            log.info("interrupted: closing outputs and writing the summary")  # Ctrl-C is how live runs end
        finally:
            self.close()
        return self.summary(time.monotonic() - start, render_times)

    def _frame(self, msg: LatentMessage | None, dt: float, t: float):
        params = self.animator.update(msg, dt)
        p50 = self.latency.recent_p50_ms()
        status = f"capture->render p50 {p50:.1f} ms" if p50 is not None else "waiting for the edge"
        frame = self.drawer.render(params, status)
        if self.vmc is not None:
            self.vmc.send(params, t)
        if self.web is not None:  # capture time on this host's clock: the page measures capture -> its frame
            self.web.publish(params, (msg.capture_ns + self.latency.offset_ns()) / 1e6 if msg is not None else None)
        if self.preview_sub is not None:
            self._poll_preview()
            frame = compose_side_by_side(self.preview.pick(msg.seq if msg else None), frame)
        return frame, params

    def close(self) -> None:
        if self.output is not None:
            self.output.close()
        if self.still_candidates and self.config.still is not None:
            import cv2

            self.config.still.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(self.config.still), self.still_candidates[len(self.still_candidates) // 2])
        if self.vmc is not None:
            self.vmc.close()
        if self.web is not None:
            self.web.close()
        if self.preview_sub is not None:
            self.preview_sub.socket.close(linger=0)
        self.sub.close()

    def summary(self, elapsed_s: float, render_times: Histogram) -> dict:
        stats = self.sub.stats
        a = self.animator.stats
        return {
            "endpoint": self.config.endpoint,
            "bundle": str(self.config.bundle) if self.config.bundle else None,
            "elapsed_s": round(elapsed_s, 3),
            "frames_rendered": self.rendered,
            "render_fps": round(self.rendered / elapsed_s, 2) if elapsed_s > 0 else 0.0,
            "messages": {
                "received": stats.received,
                "malformed": stats.malformed,
                "wrong_version": stats.wrong_version,
                "invalid_values": stats.invalid_values,
                "implausible_timestamps": self.latency.implausible,
                "other_model": self.decoders.mismatched if self.decoders else 0,
            },
            "frames": {
                "tracked": a.tracked_frames,
                "idle": a.idle_frames,
                "face_decoded": a.decoded_face,
                "hands_decoded": a.decoded_hands,
                "nonfinite_decoded": a.nonfinite_decoded,
            },
            "latency": self.latency.summary()
            | ({"capture_to_browser_frame": self.web.summary()["capture_to_browser_frame"]} if self.web else {}),
            "frame_time": render_times.summary(),
            "vmc": {"sent": self.vmc.sent, "errors": self.vmc.errors} if self.vmc else None,
            "web": self.web.summary() if self.web else None,
            "output": self.config.out,
            "frames_written": self.output.frames if self.output else 0,
            "preview_frames": self.preview.received if self.preview_sub else None,
        }


def write_summary(summary: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
