"""CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR; check("123456789") = 0x29B1.

Table-driven so the host's per-frame cost stays in microseconds; the C twin is firmware/crc16.c.
"""

from __future__ import annotations

CHECK_INPUT = b"123456789"
CHECK_VALUE = 0x29B1


def _table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _table()


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """The CRC of `data`; pass a previous result as `crc` to continue over more bytes."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc
