"""The browser renderer: one port serves the page (three.js + three-vrm) and a WebSocket of poses.

Why in the browser: every renderer host has one, WebGL draws a VRM in real time, and users bring
their own avatar by dropping a .vrm on the page. The page and its modules (`renderer/web/`, the
npm packages installed there by `scripts/setup.sh` with `npm ci`, and the generated default
avatar) are served from this process: no CDN, works offline.

Stream: `GET /ws` upgrades to a WebSocket that carries one JSON message per rendered frame: the
humanoid pose computed here (`renderer.pose`, normalised bone rotations in VRM 1.0 names, the same
numbers the VMC output sends), expression weights, tracking state and labels, and the capture time
on this host's monotonic clock. Latest value only, as on the ZeroMQ side: each client has a send
loop that, once its previous send has drained, sends the *newest* frame; frames published while a
browser is slow are skipped (counted as dropped), never queued, so the host's memory stays flat.
The page answers pings (clock offset, NTP style) and reports every second its frame rate and the
capture -> browser-frame latency of each frame it drew (`stats`), which the summary includes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import mimetypes
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderer.avatar import default_skeleton
from renderer.bones import vrm1_name
from renderer.latency import percentiles
from renderer.params import CharacterParams
from renderer.pose import PoseConfig, normalized_pose
from renderer.vmc import PRESET_VRM1, preset_values

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
# Only these npm packages are served, under /vendor/ (the import map in index.html points there).
VENDOR = {"three": "three", "@pixiv": "@pixiv"}
STATIC = {"/": "index.html", "/index.html": "index.html", "/main.js": "main.js", "/style.css": "style.css"}
WRITE_LIMIT = 64 * 1024  # bytes buffered per client before its send waits (and newer frames replace older)
SOCKET_SNDBUF = 64 * 1024  # kernel send buffer per client (Linux doubles it)
LATENCY_WINDOW = 20_000  # browser latency samples kept (bounded: a long run keeps a flat memory)
# Headless Chromium for recording and testing the page without a GPU: WebGL through SwiftShader.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]  # fmt: skip


@dataclass
class WebConfig:
    port: int = 8080
    host: str = "127.0.0.1"  # 0.0.0.0 to let other machines open the page
    mirror: bool = True  # show the avatar as the user's mirror image, as users expect on screen
    avatar: Path | None = None  # served as the default avatar (None: the generated one)


_SKELETON = default_skeleton()  # the page's pose is computed for the default avatar (docs/RENDERER.md)


def frame_message(
    params: CharacterParams, seq: int, capture_ms: float | None, mirror: bool, config: PoseConfig
) -> dict:
    """One frame for the page: normalised bone rotations (VRM 1.0 names), expressions, tracking."""
    shown = params.mirrored() if mirror else params
    pose = normalized_pose(shown, _SKELETON, config)
    bones = {vrm1_name(name): [round(float(v), 5) for v in q] for name, q in pose.items()}
    expressions = {PRESET_VRM1[k]: round(float(np.clip(v, 0.0, 1.0)), 4) for k, v in preset_values(shown).items()}
    f = params.face
    return {
        "type": "frame",
        "seq": seq,
        "capture_ms": capture_ms,
        "host_ms": time.monotonic_ns() / 1e6,
        # Tracked as the VMC status says it: less than half idle motion (the renderer's TrackingBlend).
        "tracking": {"ok": bool(params.idle < 0.5), "idle": round(float(params.idle), 3)},
        "labels": {"face": f.expression, "left": params.left_hand.gesture, "right": params.right_hand.gesture},
        "bones": bones,
        "expressions": expressions,
        # three-vrm's VRMLookAt: yaw + to the avatar's left (as ours), pitch + looks down (ours: up).
        "gaze": [round(math.degrees(shown.face.gaze_yaw), 3), round(-math.degrees(shown.face.gaze_pitch), 3)],
    }


class WebRenderer:
    """HTTP + WebSocket server in its own thread; `publish` is called from the render loop."""

    def __init__(self, config: WebConfig, pose: PoseConfig | None = None) -> None:
        self.config = config
        self.pose = pose or PoseConfig()
        self._latest: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self._events: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.published = 0
        self.sent = 0
        self.dropped = 0
        self.clients = 0  # connections so far (a reconnecting page counts again)
        self.browser_latency_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.browser_fps: float | None = None
        self._thread = threading.Thread(target=self._run, name="web-renderer", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> WebRenderer:
        from latentcast.errors import UserError

        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise UserError(
                f"--web {self.config.port}: cannot listen on {self.config.host}:{self.config.port} ({self._error}); "
                "pick a free port"
            )
        log.info("browser renderer on http://%s:%d/", self.config.host, self.port)
        return self

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when the config said 0), kept after closing."""
        if self._server is not None and self._server.sockets:
            self._bound = self._server.sockets[0].getsockname()[1]
        return getattr(self, "_bound", self.config.port)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self._server = await serve(
                self._client, self.config.host, self.config.port, process_request=self._http,
                write_limit=WRITE_LIMIT, max_size=2**20, ping_interval=None,
            )  # fmt: skip
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        _ = self.port  # remember it: the sockets are gone after closing
        await self._stop.wait()
        self._server.close()
        await self._server.wait_closed()

    def close(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5.0)

    # -- the render loop's side --------------------------------------------------------------
    def publish(self, params: CharacterParams, capture_ms: float | None = None) -> None:
        """Make `params` the newest frame; clients send it when their previous send has drained."""
        self.published += 1
        text = json.dumps(frame_message(params, self.published, capture_ms, self.config.mirror, self.pose))
        with self._lock:
            self._latest = (self.published, text)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for event in self._events:
            event.set()

    # -- HTTP ----------------------------------------------------------------------------------
    def _file_for(self, path: str) -> Path | None:
        path = path.split("?", 1)[0]
        if path in STATIC:
            return WEB_DIR / STATIC[path]
        if path == "/avatar/default.vrm":
            from renderer.default_avatar import default_avatar

            return self.config.avatar or default_avatar("1.0")
        if path.startswith("/vendor/"):
            rel = Path(path[len("/vendor/") :])
            if rel.parts and rel.parts[0] in VENDOR and ".." not in rel.parts:
                return WEB_DIR / "node_modules" / rel
        return None

    def _http(self, connection, request):
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        if request.path == "/ws":
            return None  # the WebSocket handshake goes on
        file = self._file_for(request.path)
        if file is None or not file.is_file():
            hint = " (run `bash scripts/setup.sh`: it installs the page's modules with npm ci)"
            hint = hint if "vendor" in request.path else ""
            return connection.respond(404, f"not found: {request.path}{hint}\n")
        body = file.read_bytes()
        kind = {".js": "text/javascript", ".vrm": "model/gltf-binary", ".css": "text/css"}.get(file.suffix)
        headers = Headers(
            [("Content-Type", kind or mimetypes.guess_type(file.name)[0] or "application/octet-stream"),
             ("Content-Length", str(len(body))), ("Cache-Control", "no-cache"), ("Connection", "close")]
        )  # fmt: skip
        return Response(200, "OK", headers, body)

    # -- WebSocket -----------------------------------------------------------------------------
    async def _client(self, ws) -> None:
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:  # a small kernel buffer too: a slow browser gets fresh frames, not stale ones
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF)
        event = asyncio.Event()
        self._events.add(event)
        self.clients += 1
        reader = asyncio.create_task(self._read(ws))
        last = None
        try:
            while True:
                if self._latest is None or (last is not None and self._latest[0] == last):
                    event.clear()
                    await event.wait()
                with self._lock:
                    seq, text = self._latest
                if last is not None and seq > last + 1:
                    self.dropped += seq - last - 1
                last = seq
                await ws.send(text)  # waits while this client's buffer is over WRITE_LIMIT
                self.sent += 1
        except Exception as exc:  # the browser went away: end this client only
            log.debug("web client closed: %s", exc)
        finally:
            self._events.discard(event)
            reader.cancel()

    async def _read(self, ws) -> None:
        async for raw in ws:
            try:
                msg = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if not isinstance(msg, dict):
                continue
            if msg.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong", "t": msg.get("t"), "host_ms": time.monotonic_ns() / 1e6}))
            elif msg.get("type") == "stats":
                values = [float(v) for v in msg.get("latency_ms", []) if isinstance(v, (int, float))]
                self.browser_latency_ms.extend(v for v in values if 0.0 <= v < 60_000.0)
                fps = msg.get("fps")
                self.browser_fps = float(fps) if isinstance(fps, (int, float)) else self.browser_fps

    def summary(self) -> dict:
        return {
            "url": f"http://{self.config.host}:{self.port}/",
            "clients": self.clients,
            "published": self.published,
            "sent": self.sent,
            "dropped": self.dropped,
            "browser_fps": self.browser_fps,
            "capture_to_browser_frame": percentiles(list(self.browser_latency_ms)),
        }
