"""Canonical PNG re-encoding at launch: images from different encoders end up byte-structure indistinguishable,
decompression bombs and corrupt files are refused, and pages must have one pixel size."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from sqlmodel import col, select

from app.db import session_scope
from app.images import ImageError, canonical_png, page_size_problems, png_chunks
from app.launch import LaunchError, launch_round
from app.models import RoundImage
from app.placeholder import write_placeholders
from study_designs.schema import load_design

DESIGN = Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml"


def picture(size=(16, 12)) -> Image.Image:
    im = Image.new("RGB", size, (250, 250, 250))
    for x in range(size[0]):
        im.putpixel((x, x % size[1]), (x * 13 % 256, 40, 200))
    return im


def save(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def raw_png(width: int, height: int, rows: bytes, *, bit_depth=8, colour=2, extra=(), level=1) -> bytes:
    """A PNG written by hand (another encoder): any zlib level, optional ancillary chunks."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    body = [chunk(b"IHDR", ihdr), *(chunk(k, v) for k, v in extra), chunk(b"IDAT", zlib.compress(rows, level))]
    return b"\x89PNG\r\n\x1a\n" + b"".join(body) + chunk(b"IEND", b"")


def sixteen_bit_png(im: Image.Image) -> bytes:
    """16-bit RGB with gAMA, pHYs and sBIT chunks, zlib level 1 (samples = 8-bit value × 257)."""
    rows = b""
    for y in range(im.height):
        rows += b"\x00" + b"".join(
            struct.pack(">HHH", *(v * 257 for v in im.getpixel((x, y)))) for x in range(im.width)
        )
    extra = [
        (b"gAMA", struct.pack(">I", 45455)),
        (b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
        (b"sBIT", b"\x10\x10\x10"),
        (b"tIME", b"\x07\xe9\x01\x02\x03\x04\x05"),
    ]
    return raw_png(im.width, im.height, rows, bit_depth=16, extra=extra, level=1)


def variants(im: Image.Image) -> dict[str, bytes]:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "model=scoft_mpc")
    rgba = im.convert("RGBA")
    return {
        "pil-default": save(im),
        "pil-level1-dpi-text": save(im, compress_level=1, dpi=(300, 300), pnginfo=info),
        "rgba-opaque": save(rgba),
        "palette": save(im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)),
        "16-bit-gAMA-pHYs-sBIT": sixteen_bit_png(im),
        "bmp": save(im, "BMP"),
        "tiff": save(im, "TIFF"),
        "icc": save(im, icc_profile=b"fake-profile-bytes" * 8),
    }


def structure(data: bytes):
    chunks = png_chunks(data)
    """(chunk types, IHDR payload, zlib header of the image data)."""
    idat = b"".join(p for k, p in chunks if k == b"IDAT")
    return tuple(k for k, _ in chunks), next(p for k, p in chunks if k == b"IHDR"), idat[:2]


def test_mixed_encoders_become_one_canonical_form():
    im = picture()
    out = {name: canonical_png(data) for name, data in variants(im).items()}
    shapes = {structure(data) for data, _, _ in out.values()}
    assert len(shapes) == 1, shapes
    kinds, ihdr, zhead = shapes.pop()
    assert kinds == (b"IHDR", b"IDAT", b"IEND")
    assert struct.unpack(">IIBBBBB", ihdr) == (16, 12, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    assert zhead == b"\x78\xda"  # one zlib level (9) for every image
    lossless = {name: data for name, (data, _, _) in out.items() if name not in {"palette"}}
    assert len(set(lossless.values())) == 1, "same pixels, same bytes, whoever wrote them"
    for data, w, h in out.values():
        assert (w, h) == (16, 12)
        assert b"scoft" not in data and b"fake-profile" not in data


def test_jpeg_and_greyscale_re_encoded_too():
    im = picture()
    for data in (save(im, "JPEG", quality=90), save(im.convert("L")), save(im.convert("LA"))):
        out, w, h = canonical_png(data)
        assert [k for k, _ in png_chunks(out)] == [b"IHDR", b"IDAT", b"IEND"]
        assert Image.open(io.BytesIO(out)).mode == "RGB" and (w, h) == (16, 12)


def test_sixteen_bit_scaled_not_clipped():
    im = picture()
    out, _, _ = canonical_png(sixteen_bit_png(im))
    assert Image.open(io.BytesIO(out)).tobytes() == im.tobytes()
    grey16 = raw_png(2, 1, b"\x00" + struct.pack(">HH", 0, 40000), bit_depth=16, colour=0)
    assert Image.open(io.BytesIO(canonical_png(grey16)[0])).getpixel((1, 0)) == (156, 156, 156)


def test_alpha_flattened_onto_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    im.putpixel((0, 0), (255, 0, 0, 255))
    im.putpixel((1, 0), (0, 0, 0, 128))
    out = Image.open(io.BytesIO(canonical_png(save(im))[0]))
    assert out.getpixel((0, 0)) == (255, 0, 0)
    assert out.getpixel((2, 2)) == (255, 255, 255)
    assert out.getpixel((1, 0)) in {(127, 127, 127), (126, 126, 126), (128, 128, 128)}
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([10, 20, 30, 40, 50, 60])
    palette.putpixel((1, 0), 1)
    out = Image.open(io.BytesIO(canonical_png(save(palette, transparency=0))[0]))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (40, 50, 60)


def test_decompression_bomb_refused_from_the_header():
    bomb = raw_png(20_000, 20_000, b"", level=9)  # claims 400 Mpx, carries no pixel data
    with pytest.raises(ImageError, match="over the limit of 16,777,216 pixels"):
        canonical_png(bomb)
    with pytest.raises(ImageError, match="5000×5000 = 25,000,000 pixels is over the limit of 16,777,216 pixels"):
        canonical_png(raw_png(5000, 5000, b""))
    with pytest.raises(ImageError, match="16×12 = 192 pixels is over the limit of 100"):
        canonical_png(save(picture()), max_pixels=100)
    assert canonical_png(save(picture()), max_pixels=192)[1:] == (16, 12)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a readable image"),
        (b"garbage, not an image at all" * 10, "not a readable image"),
        (save(picture((64, 64)))[:-40], "not a readable image"),  # truncated
        (save(picture((64, 64)), "JPEG")[:200], "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image"),
    ],
)
def test_undecodable_images_refused(data, why):
    with pytest.raises(ImageError, match=why):
        canonical_png(data)


def test_animated_refused():
    frames = [picture(), picture().rotate(90)]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="animated"):
        canonical_png(data)


def test_page_size_problems_name_page_and_files():
    problems = page_size_problems(
        {"p1": [("a.png", 512, 512), ("b.png", 512, 512)], "p2": [("c.png", 512, 512), ("d.jpg", 256, 256)]}
    )
    assert problems == [
        "page p2: images differ in pixel size (c.png 512×512, d.jpg 256×256); all images of a page must match"
    ]
    assert page_size_problems({"p": [("x", 1, 1)]}) == []


# -- through the launch function ---------------------------------------------------------------------------


def rewrite(manifest: Path, changes: dict[int, bytes]) -> list[dict]:
    """Replace the image of manifest line n (1-based) with new bytes and fix its sha256."""
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    for n, data in changes.items():
        e = entries[n - 1]
        (manifest.parent / e["file"]).write_bytes(data)
        e["sha256"] = hashlib.sha256(data).hexdigest()
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return entries


def do_launch(tmp_path: Path, manifest: Path, round_id: str = "r1", **kw) -> str:
    """Launch from ``manifest`` into a fresh SQLite database; returns its URL."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with session_scope(url) as s:
        launch_round(
            s,
            design_path=DESIGN,
            manifest_path=manifest,
            round_id=round_id,
            media_root=tmp_path / "media",
            now=datetime(2026, 6, 1, tzinfo=UTC),
            **kw,
        )
    return url


def test_launch_stores_only_canonical_bytes_in_no_manifest_order(tmp_path):
    manifest, _ = write_placeholders(load_design(DESIGN), tmp_path / "img", size=24)
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    mixed = {}
    for n, e in enumerate(entries, start=1):
        im = Image.open(manifest.parent / e["file"]).convert("RGB")
        mixed[n] = list(variants(im).values())[n % 7]
    rewrite(manifest, mixed)
    with session_scope(do_launch(tmp_path, manifest)) as s:
        rows = list(s.exec(select(RoundImage).order_by(col(RoundImage.id))).all())
    assert len(rows) == len(entries)
    shapes = set()
    for r in rows:
        data = (tmp_path / "media" / r.path).read_bytes()
        kinds, ihdr, zhead = structure(data)
        shapes.add((kinds, ihdr[8:], zhead))
        assert (r.width, r.height) == (24, 24)
        assert (tmp_path / "media" / r.path).stat().st_mtime == datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    assert shapes == {((b"IHDR", b"IDAT", b"IEND"), b"\x08\x02\x00\x00\x00", b"\x78\xda")}
    stored = [r.image_id for r in rows]
    manifest_order = [e["image_id"] for e in entries]
    assert sorted(stored) == sorted(manifest_order) and stored != manifest_order
    # row ids in manifest order would group by model (one run per model); a random order has about 2/3 changes
    # per neighbour pair, and fewer than K + 1 runs among 24 images happens with probability far below 1e-6
    models = [r.model_id for r in rows]
    runs = 1 + sum(1 for a, b in zip(models, models[1:], strict=False) if a != b)
    assert runs > len(set(models)) + 1


def test_launch_names_every_bad_image_and_stores_nothing(tmp_path):
    manifest, _ = write_placeholders(load_design(DESIGN), tmp_path / "img", size=24)
    entries = rewrite(
        manifest,
        {2: b"not an image", 5: raw_png(20_000, 20_000, b""), 7: save(picture((32, 24)))},
    )
    with pytest.raises(LaunchError) as err:
        do_launch(tmp_path, manifest)
    problems = err.value.problems
    assert problems[0].startswith(f"line 2 (image {entries[1]['image_id']}, file {entries[1]['file']}): not a readable")
    assert problems[1].startswith(f"line 5 (image {entries[4]['image_id']}, file {entries[4]['file']}): over the limit")
    size_problem = [p for p in problems if "differ in pixel size" in p]
    assert len(size_problem) == 1 and entries[6]["file"] + " 32×24" in size_problem[0]
    assert len(problems) == 3
    assert not any((tmp_path / "media" / "r1").glob("*.png"))
    with pytest.raises(LaunchError, match="over the limit of 100"):
        do_launch(tmp_path, manifest, round_id="r2", max_pixels=100)


def test_cli_launch_reads_the_pixel_limit_from_the_environment(tmp_path, monkeypatch, capsys):
    from app import rounds

    manifest, _ = write_placeholders(load_design(DESIGN), tmp_path / "img", size=24)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("IMAGE_MAX_PIXELS", "500")  # 24×24 = 576
    args = ["launch", "--design", str(DESIGN), "--manifest", str(manifest), "--round", "small"]
    assert rounds.main(args) != 0
    assert "576 pixels is over the limit of 500 pixels" in capsys.readouterr().err
    monkeypatch.setenv("IMAGE_MAX_PIXELS", "576")
    assert rounds.main(args) == 0
