"""TensorBoard event files: TFRecord framing + the protobuf fields a scalar summary uses.

A small self-contained codec (no TensorFlow or protobuf needed): CRC-32C, varints, the
Event/Summary/TensorProto fields scalars use, and the writer of float64 scalar events.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._aliases import _OUR_METADATA_KEY
from ._errors import LogFormatError
from ._records import _Parsed


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord framing (RFC 3720 polynomial)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_CRC_TABLE_NP = np.asarray(_CRC_TABLE, dtype=np.uint32)


def _masked_crc_many(chunks: Sequence[bytes]) -> np.ndarray:
    """Masked CRC-32C of many byte strings at once: one NumPy step per byte position for all
    chunks of the same length (a pure-Python byte loop runs at ~2 MB/s)."""
    result = np.zeros(len(chunks), dtype=np.uint32)
    by_length: dict[int, list[int]] = {}
    for i, chunk in enumerate(chunks):
        by_length.setdefault(len(chunk), []).append(i)
    for length, members in by_length.items():
        block = np.frombuffer(b"".join(chunks[i] for i in members), dtype=np.uint8)
        block = block.reshape(len(members), length)
        crc = np.full(len(members), 0xFFFFFFFF, dtype=np.uint32)
        for column in range(length):
            crc = _CRC_TABLE_NP[(crc ^ block[:, column]) & 0xFF] ^ (crc >> np.uint32(8))
        crc ^= np.uint32(0xFFFFFFFF)
        masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)
        result[members] = masked
    return result


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer):
            raise ValueError("truncated varint")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buffer: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message (value: int or bytes)."""
    out = []
    pos = 0
    size = len(buffer)
    while pos < size:
        key = buffer[pos]
        if key < 0x80:  # one-byte keys: every field we read (numbers < 16)
            pos += 1
        else:
            key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length = buffer[pos] if pos < size else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buffer, pos)
            value: Any = buffer[pos : pos + length]
            pos += length
        elif wire == 0:
            value, pos = _varint(buffer, pos)
        elif wire == 1:
            value, pos = buffer[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buffer[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > size:
            raise ValueError("truncated protobuf field")
        out.append((number, wire, value))
    return out


def _tensor_scalar(buffer: bytes) -> float | str | None:
    """TensorProto -> its single value (float/double/int/string); None for anything else."""
    dtype = 0
    content = b""
    floats: list[float] = []
    strings: list[bytes] = []
    for number, wire, value in _fields(buffer):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            content = value
        elif number == 5:  # float_val, packed or not
            floats += (
                list(struct.unpack(f"<{len(value) // 4}f", value))
                if wire == 2
                else [struct.unpack("<f", value)[0]]
            )
        elif number == 6:  # double_val
            floats += (
                list(struct.unpack(f"<{len(value) // 8}d", value))
                if wire == 2
                else [struct.unpack("<d", value)[0]]
            )
        elif number in (7, 10) and wire == 0:  # int_val / int64_val, unpacked
            floats.append(float(value - (1 << 64) if value >= 1 << 63 else value))
        elif number in (7, 10) and wire == 2:  # packed ints
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                floats.append(float(item - (1 << 64) if item >= 1 << 63 else item))
        elif number == 8 and wire == 2:
            strings.append(value)
    if dtype == 7 and strings:
        return strings[0].decode("utf-8", "replace")
    if floats:
        return floats[0]
    formats = {1: "<f", 2: "<d", 3: "<i", 9: "<q", 19: "<e"}
    if content and dtype in formats and len(content) == struct.calcsize(formats[dtype]):
        return float(struct.unpack(formats[dtype], content)[0])
    return None


def _event_scalars(data: bytes) -> tuple[int | None, list[tuple[str, float | str]]]:
    step: int | None = None
    scalars: list[tuple[str, float | str]] = []
    for number, wire, value in _fields(data):
        if number == 2 and wire == 0:
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 5 and wire == 2:  # Summary
            for vnum, vwire, summary_value in _fields(value):
                if vnum != 1 or vwire != 2:
                    continue
                tag = None
                scalar: float | str | None = None
                for fnum, fwire, item in _fields(summary_value):
                    if fnum == 1 and fwire == 2:
                        tag = item.decode("utf-8", "replace")
                    elif fnum == 2 and fwire == 5:
                        scalar = struct.unpack("<f", item)[0]
                    elif fnum == 8 and fwire == 2:
                        scalar = _tensor_scalar(item)
                if tag is not None and scalar is not None:
                    scalars.append((tag, scalar))
    return step, scalars


def _tfevents_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if "tfevents" in p.name and p.is_file())
    return [path]


def _read_tensorboard(path: str, raw: bytes | None = None) -> _Parsed:
    parsed = _Parsed([])
    files = _tfevents_files(Path(path))
    if not files:
        raise LogFormatError(
            path, None, "no trainer_state.json or TensorBoard event files (*tfevents*) here"
        )
    for file in files:
        data = raw if raw is not None and len(files) == 1 else file.read_bytes()
        label = str(file)
        # walk the framing first, then check every checksum at once (vectorised CRC)
        frames: list[tuple[int, int]] = []  # (offset, payload length)
        offset = 0
        while offset < len(data):
            if offset + 12 > len(data):
                parsed.warnings.append(
                    f"{file.name}: truncated record header at byte {offset} ignored"
                )
                break
            header = data[offset : offset + 8]
            (length,) = struct.unpack("<Q", header)
            if offset + 16 + length > len(data):
                if _masked_crc(header) != struct.unpack("<I", data[offset + 8 : offset + 12])[0]:
                    raise LogFormatError(
                        label,
                        f"record {len(frames)} (byte {offset})",
                        "bad length checksum: not a TFRecord file or corrupt",
                    )
                parsed.warnings.append(
                    f"{file.name}: last record truncated at byte {offset}; ignored (writer killed?)"
                )
                break
            frames.append((offset, length))
            offset += 16 + length
        headers = [data[o : o + 8] for o, _ in frames]
        stored = [struct.unpack("<I", data[o + 8 : o + 12])[0] for o, _ in frames]
        for record, ok in enumerate(_masked_crc_many(headers) == np.asarray(stored, np.uint32)):
            if not ok:
                where = f"record {record} (byte {frames[record][0]})"
                raise LogFormatError(
                    label, where, "bad length checksum: not a TFRecord file or corrupt"
                )
        # large records are images/graphs/histograms: not scalars, skipped unread
        small = [i for i, (_, length) in enumerate(frames) if length <= 65536]
        payloads = [data[frames[i][0] + 12 : frames[i][0] + 12 + frames[i][1]] for i in small]
        stored = [
            struct.unpack("<I", data[o + 12 + n : o + 16 + n])[0]
            for o, n in (frames[i] for i in small)
        ]
        checks = _masked_crc_many(payloads) == np.asarray(stored, np.uint32)
        for record, payload, ok in zip(small, payloads, checks, strict=True):
            where = f"record {record} (byte {frames[record][0]})"
            if not ok:
                raise LogFormatError(label, where, "bad data checksum: corrupt event file")
            try:
                step, scalars = _event_scalars(payload)
            except (ValueError, struct.error) as error:
                raise LogFormatError(label, where, f"malformed event: {error}") from None
            values: dict[str, float] = {}
            for tag, scalar in scalars:
                if isinstance(scalar, str):
                    if tag == _OUR_METADATA_KEY:
                        parsed.metadata = json.loads(scalar)
                    continue
                values[tag] = float(scalar)
            if values:
                step = 0 if step is None else step
                last = parsed.records[-1] if parsed.records else None
                # one event per tag: consecutive events of a step form one record, unless a tag
                # repeats (a restart logging the step again)
                if last is not None and last[1] == step and not (values.keys() & last[2].keys()):
                    last[2].update(values)
                else:
                    parsed.records.append((where, step, values))
    return parsed


def _pb_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _pb_varint((number << 3) | wire)
    if wire == 0:
        return key + _pb_varint(int(payload))
    if wire == 2:
        assert isinstance(payload, bytes)
        return key + _pb_varint(len(payload)) + payload
    assert isinstance(payload, bytes)
    return key + payload


def _tf_records(payloads: Sequence[bytes]) -> bytes:
    """Frame payloads as TFRecords: length, masked CRC of length, payload, masked CRC."""
    headers = [struct.pack("<Q", len(p)) for p in payloads]
    header_crcs = _masked_crc_many(headers).tolist()
    payload_crcs = _masked_crc_many(payloads).tolist()
    parts = []
    for header, header_crc, payload, payload_crc in zip(
        headers, header_crcs, payloads, payload_crcs, strict=True
    ):
        parts += [header, struct.pack("<I", header_crc), payload, struct.pack("<I", payload_crc)]
    return b"".join(parts)


def _scalar_event(step: int, wall_time: float, tag: str, value: float | str) -> bytes:
    plugin = "text" if isinstance(value, str) else "scalars"
    metadata = _pb_field(1, 2, _pb_field(1, 2, plugin.encode()))
    if isinstance(value, str):  # DT_STRING scalar
        tensor = _pb_field(1, 0, 7) + _pb_field(2, 2, b"") + _pb_field(8, 2, value.encode())
    else:  # DT_DOUBLE so that float64 values round-trip exactly (simple_value is float32)
        tensor = (
            _pb_field(1, 0, 2) + _pb_field(2, 2, b"") + _pb_field(6, 2, struct.pack("<d", value))
        )
    summary_value = (
        _pb_field(1, 2, tag.encode()) + _pb_field(9, 2, metadata) + _pb_field(8, 2, tensor)
    )
    summary = _pb_field(1, 2, summary_value)
    event = (
        _pb_field(1, 1, struct.pack("<d", wall_time))
        + _pb_field(2, 0, step)
        + _pb_field(5, 2, summary)
    )
    return event


def _encode_events(
    metadata_json: str, rows: Sequence[tuple[int, dict[str, float]]], *, wall_time: float
) -> bytes:
    """One event file: the file-version event, our metadata as a text scalar at step 0, then
    one float64 scalar event per (step, tag)."""
    events = [
        _pb_field(1, 1, struct.pack("<d", wall_time)) + _pb_field(3, 2, b"brain.Event:2"),
        _scalar_event(0, wall_time, _OUR_METADATA_KEY, metadata_json),
    ]
    for step, values in rows:
        for tag, value in values.items():
            events.append(_scalar_event(step, wall_time, tag, value))
    return _tf_records(events)
