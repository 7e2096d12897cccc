"""Consistent Overhead Byte Stuffing: a frame never contains 0x00, so 0x00 can end every frame.

A receiver that loses bytes resynchronises at the next 0x00 without any length guessing
(docs/FIRMWARE.md, "Framing"). The C twin is firmware/cobs.c.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes between two delimiters are not a valid COBS encoding."""


def encode(data: bytes) -> bytes:
    """COBS-encode `data` (no trailing delimiter). Overhead: 1 byte per started 254-byte run."""
    out = bytearray(b"\x00")
    code_at, code = 0, 1
    for byte in data:
        if byte == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
    out[code_at] = code
    return bytes(out)


def decode(data: bytes) -> bytes:
    """Decode one COBS block (delimiter already removed); raise CobsError on a malformed block."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError(f"zero byte inside a COBS block at offset {i}")
        end = i + code
        if end > n:
            raise CobsError(f"COBS code {code} at offset {i} runs past the end ({n} bytes)")
        chunk = data[i + 1 : end]
        if 0 in chunk:
            raise CobsError("zero byte inside a COBS block")
        out += chunk
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)
