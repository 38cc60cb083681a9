"""The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), as the
SageMaker runtime sends `InvokeEndpointWithResponseStream` answers.

A message is: total length (4 bytes), headers length (4), CRC32 of those 8 bytes, the
headers, the payload, CRC32 of everything before it. A header is: name length (1 byte),
name, value type (7 = string), value length (2 bytes), value."""

from __future__ import annotations

import json
import struct
import zlib


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name + b"\x07" + struct.pack("!H", len(raw_value)) + raw_value
    return out


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = _headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack("!I", zlib.crc32(message))


def payload_part(data: bytes) -> bytes:
    return encode_message(
        {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}, data
    )


def model_stream_error(message: str, code: str = "ModelStreamError") -> bytes:
    payload = json.dumps({"Message": message, "ErrorCode": code}).encode()
    return encode_message(
        {":exception-type": "ModelStreamError", ":content-type": "application/json", ":message-type": "exception"},
        payload,
    )
