"""Writes an empty MaxMind DB file (one search-tree node, no data): a real database the tracker
opens, standing in for what geoipupdate downloads, which cannot be fetched here."""

from __future__ import annotations

import struct
import time
from pathlib import Path

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
UTF8, UINT16, UINT32, MAP = 2, 5, 6, 7
UINT64, ARRAY = 9, 11  # extended types


def _control(kind: int, size: int) -> bytes:
    assert size < 29
    if kind <= MAP:
        return bytes([(kind << 5) | size])
    return bytes([size, kind - 7])


def _encode(value: object) -> bytes:
    if isinstance(value, str):
        data = value.encode()
        return _control(UTF8, len(data)) + data
    if isinstance(value, tuple):  # (kind, unsigned integer)
        kind, number = value
        data = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return _control(kind, len(data)) + data
    if isinstance(value, list):
        return _control(ARRAY, len(value)) + b"".join(_encode(v) for v in value)
    if isinstance(value, dict):
        return _control(MAP, len(value)) + b"".join(
            _encode(k) + _encode(v) for k, v in value.items()
        )
    raise TypeError(f"cannot encode {value!r}")


def write_empty_database(path: Path, database_type: str) -> None:
    """An IPv4 database in which every lookup finds nothing."""
    node_count = 1
    # One node, 24-bit records: both point at node_count, which means "no data".
    tree = struct.pack(">I", node_count)[1:] * 2
    metadata = {
        "binary_format_major_version": (UINT16, 2),
        "binary_format_minor_version": (UINT16, 0),
        "build_epoch": (UINT64, int(time.time())),
        "database_type": database_type,
        "description": {"en": "empty test database"},
        "ip_version": (UINT16, 4),
        "languages": ["en"],
        "node_count": (UINT32, node_count),
        "record_size": (UINT16, 24),
    }
    path.write_bytes(tree + bytes(16) + METADATA_MARKER + _encode(metadata))
