"""Blinding of image bytes: PNG files keep only the chunks needed to draw them (no text, time or EXIF chunks)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEEP_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"sRGB", b"cHRM", b"sBIT", b"pHYs"}


class ImageError(ValueError):
    pass


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk; raises :class:`ImageError` on a malformed file."""
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError("not a PNG file")
    out, i = [], len(PNG_SIGNATURE)
    while i < len(data):
        if i + 8 > len(data):
            raise ImageError("truncated PNG chunk header")
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        payload = data[i + 8 : i + 8 + length]
        if len(payload) != length or i + 12 + length > len(data):
            raise ImageError("truncated PNG chunk")
        out.append((kind, payload))
        i += 12 + length
        if kind == b"IEND":
            break
    return out


def strip_png(data: bytes) -> bytes:
    """The same PNG with only drawing chunks (text chunks such as tEXt/iTXt/zTXt, tIME, eXIf removed)."""
    parts = [PNG_SIGNATURE]
    for kind, payload in png_chunks(data):
        if kind in KEEP_CHUNKS:
            crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
            parts.append(struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc))
    return b"".join(parts)


def blinded_png(data: bytes) -> tuple[bytes, int, int]:
    """PNG bytes safe to serve (any input format is re-encoded to PNG first) and the image size."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if im.format != "PNG":
                buf = io.BytesIO()
                im.convert("RGBA" if im.mode in {"RGBA", "LA", "P"} else "RGB").save(buf, format="PNG")
                data = buf.getvalue()
    except (OSError, Image.DecompressionBombError) as err:
        raise ImageError(f"not a readable image: {err}") from None
    return strip_png(data), width, height
