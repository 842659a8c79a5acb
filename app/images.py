"""Blinding of image bytes: every image is decoded and re-encoded into one canonical PNG form.

Canonical form: 8-bit RGB (colour type 2), no interlace, alpha flattened onto white (a participant sees the
image on a white page anyway, and one colour type for every model is the point), ICC profiles and gamma ignored,
exactly the chunks IHDR, one IDAT, IEND (no pHYs, gAMA, sBIT, sRGB, text, time or EXIF chunks), pixels compressed
by one encoder at one zlib level. Two images with the same pixels therefore have the same bytes, whichever tool
wrote them; what differs between images is only what their pixels imply.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Mapping, Sequence

from PIL import Image, ImageOps

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEEP_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"sRGB", b"cHRM", b"sBIT", b"pHYs"}
CANONICAL_CHUNKS = (b"IHDR", b"IDAT", b"IEND")
DEFAULT_MAX_PIXELS = 4096 * 4096
ZLIB_LEVEL = 9
_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


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


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def strip_png(data: bytes) -> bytes:
    """The same PNG with only drawing chunks (text chunks such as tEXt/iTXt/zTXt, tIME, eXIf removed)."""
    parts = [PNG_SIGNATURE]
    parts += [_chunk(kind, payload) for kind, payload in png_chunks(data) if kind in KEEP_CHUNKS]
    return b"".join(parts)


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB pixels; 16-bit samples scaled down, alpha (or palette transparency) composited onto white."""
    if im.mode in _HIGH_BIT_MODES:
        scale = 1 / 256 if im.mode != "F" else 255.0
        im = im.convert("F").point(lambda v: v * scale).convert("L")
    if im.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _encode(rgb: Image.Image) -> bytes:
    """IHDR + one IDAT + IEND from a fresh image (no carried-over info such as ICC, dpi or gamma)."""
    fresh = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    buf = io.BytesIO()
    fresh.save(buf, format="PNG", compress_level=ZLIB_LEVEL, optimize=False)
    chunks = png_chunks(buf.getvalue())
    header = next(payload for kind, payload in chunks if kind == b"IHDR")
    idat = b"".join(payload for kind, payload in chunks if kind == b"IDAT")
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def canonical_png(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, int, int]:
    """The image re-encoded into the canonical PNG form, and its width and height.

    Raises :class:`ImageError` (one line naming the problem) for files that are not images, fail to decode
    (truncated, garbage), are animated, or have more than ``max_pixels`` pixels (checked from the header,
    before any pixel is decoded, so decompression bombs cost nothing).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{width}×{height} = {width * height:,} pixels is over the limit of {max_pixels:,} pixels"
                    )
                if getattr(im, "n_frames", 1) > 1:
                    raise ImageError(f"an animated image ({im.n_frames} frames); give one still image")
                im.load()
                im = ImageOps.exif_transpose(im) or im
                rgb = _to_rgb(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"over the limit of {max_pixels:,} pixels or Pillow's own ({err})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError) as err:
        raise ImageError(f"not a readable image ({type(err).__name__}: {err})") from None
    if width == 0 or height == 0:
        raise ImageError("an image with no pixels")
    return _encode(rgb), rgb.width, rgb.height


def blinded_png(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, int, int]:
    """PNG bytes safe to serve and the image size (the canonical form, see :func:`canonical_png`)."""
    return canonical_png(data, max_pixels=max_pixels)


def page_size_problems(pages: Mapping[str, Sequence[tuple[str, int, int]]]) -> list[str]:
    """One problem per page whose images (``(name, width, height)``) do not all have the same pixel size."""
    problems = []
    for page, images in sorted(pages.items()):
        sizes = {(w, h) for _, w, h in images}
        if len(sizes) > 1:
            listed = ", ".join(f"{name} {w}×{h}" for name, w, h in sorted(images))
            problems.append(f"page {page}: images differ in pixel size ({listed}); all images of a page must match")
    return problems
