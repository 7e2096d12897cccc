"""Issue 11, item 8: progress is a tqdm bar on a terminal and plain periodic lines anywhere else."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

from latentcast.progress import PlainProgress, progress

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (
    "import time; from latentcast.progress import progress\n"
    "with progress(total=300, desc='job', unit='frame', interval_s=0.2) as bar:\n"
    "    for _ in range(300):\n"
    "        time.sleep(0.003); bar.update(1)\n"
)


def test_not_a_terminal_gets_plain_periodic_lines_without_carriage_returns():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 2 <= len(lines) <= 15, lines  # ~1 s of work at one line per 0.2 s, plus the final line
    assert lines[-1].startswith("job: 300/300 frame (100%)")


def test_a_real_pseudo_terminal_gets_the_tqdm_bar():
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT, stderr=slave, stdout=slave, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=30) == 0
    assert b"\r" in out and b"300/300" in out  # tqdm redraws in place on a terminal


def test_plain_progress_speaks_the_tqdm_calls_the_project_uses():
    stream = io.StringIO()
    items = list(progress(range(5), desc="epoch 1", file=stream, interval_s=0.0, leave=False))
    assert items == [0, 1, 2, 3, 4] and "epoch 1: 5/5 it (100%)" in stream.getvalue()
    quiet = io.StringIO()
    bar = PlainProgress(total=10, file=quiet, leave=False, interval_s=60.0)
    bar.update(3)
    bar.set_postfix({"loss": "0.25"})
    assert "3/10" in bar.line() and "loss=0.25" in bar.line()
    bar.close()
    assert quiet.getvalue() == ""  # short and leave=False: silent, like tqdm's vanishing bar
    scaled = PlainProgress(total=2_000_000, unit="B", unit_scale=True, file=io.StringIO())
    scaled.update(1_500_000)
    assert "1.5M/2.0M B" in scaled.line()
