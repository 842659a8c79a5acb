"""CCUB data layer: metadata, fetching a sheet from a local HTTP server, captioning, the Dataset, synthetic sets."""

import csv
import dataclasses
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scoft import data
from scoft.data import CCUBDataset, FetchOptions, Record, collate, read_metadata, write_metadata


def _image_bytes(fmt: str, size: tuple[int, int] = (80, 60), mode: str = "RGB", colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def _transparent_png() -> bytes:
    image = Image.new("RGBA", (80, 60), (0, 0, 255, 255))
    image.paste((0, 0, 0, 0), (0, 0, 40, 60))  # left half fully transparent
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class _Server:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.routes = {
            "/good.jpg": (200, "image/jpeg", _image_bytes("JPEG")),
            "/alpha.png": (200, "image/png", _transparent_png()),
            "/octet": (200, "application/octet-stream", _image_bytes("PNG", colour=(0, 120, 0))),
            "/ng.png": (200, "image/png", _image_bytes("PNG", colour=(0, 0, 0))),
            "/page.html": (200, "text/html; charset=utf-8", b"<html><body>not an image</body></html>"),
            "/corrupt.jpg": (200, "image/jpeg", b"\xff\xd8\xff\xe0" + b"garbage" * 50),
            "/tiny.png": (200, "image/png", _image_bytes("PNG", size=(10, 10))),
        }


@pytest.fixture()
def server() -> Iterator[tuple[str, _Server]]:
    state = _Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with state.lock:
                state.hits[self.path] += 1
                count = state.hits[self.path]
            if self.path == "/slow.jpg":
                time.sleep(1.0)
            if self.path == "/down" or (self.path == "/flaky.png" and count == 1):
                self.send_error(503)
                return
            route = state.routes.get(self.path) or (
                (200, "image/png", _image_bytes("PNG", colour=(9, 9, 9)))
                if self.path in {"/flaky.png", "/slow.jpg"}
                else None
            )
            if route is None:
                self.send_error(404)
                return
            status, content_type, body = route
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _write_sheet(path: Path, base: str) -> Path:
    rows = [
        ("KR", "ARCH", f"{base}/good.jpg", "A hanok roof"),
        ("Korea", "CLOTH", f"{base}/alpha.png", "Hanbok at a festival"),
        (" korean ", "FOOD", f"{base}/octet", "Bibimbap in a stone bowl"),
        ("KR", "FOOD", f"{base}/flaky.png", "Kimchi jars"),
        ("KR", "DANCE", f"{base}/missing.jpg", "A fan dance"),
        ("KR", "CITIES", f"{base}/slow.jpg", "Seoul at night"),
        ("KR", "PEOPLE", f"{base}/page.html", "Market sellers"),
        ("KR", "RELIG", f"{base}/corrupt.jpg", "A temple bell"),
        ("KR", "ARCH", f"{base}/tiny.png", "A palace gate"),
        ("KR", "ARCH", f"{base}/good.jpg", "The same roof again"),
        ("KR", "ARCH", "", "No link"),
        ("KR", "ARCH", "ftp://example.org/x.jpg", "Wrong scheme"),
        ("KR", "ARCH", f"{base}/good.jpg?v=2", ""),
        ("NG", "FOOD", f"{base}/ng.png", "Jollof rice"),
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([" Country ", "CATEGORY", "Image URL", "Caption"])
        writer.writerows(rows)
    return path


FAST = FetchOptions(timeout=0.3, retries=1, backoff=0.01, min_side=32)


def test_fetch_saves_good_images_reports_bad_rows_and_resumes(server, tmp_path: Path) -> None:
    base, state = server
    sheet = _write_sheet(tmp_path / "sheet.csv", base)
    out = tmp_path / "korea"
    summary = data.fetch_ccub(sheet, "korea", out, FAST, workers=4, progress=False)

    records = read_metadata(out)
    assert [r.source_url.rsplit("/", 1)[1] for r in records] == ["good.jpg", "alpha.png", "octet", "flaky.png"]
    assert [r.text for r in records][:2] == ["A hanok roof", "Hanbok at a festival"]
    assert all(r.culture == "korea" and r.blip_text == "" and r.negative_imgpath == () for r in records)
    assert records[0].file_name.endswith(".jpg") and records[1].file_name.endswith(".png")
    for rec in records:
        with Image.open(out / rec.file_name) as img:
            assert img.mode == "RGB" and img.size == (80, 60)
    with Image.open(out / records[1].file_name) as img:
        assert img.getpixel((5, 5)) == (255, 255, 255)  # transparency composited over white
        assert img.getpixel((70, 5)) == (0, 0, 255)

    assert summary.downloaded == 4 and summary.reused == 0 and summary.skipped_other_cultures == 1
    assert dict(summary.reasons) == {
        "http_404": 1,
        "timeout": 1,
        "not_an_image": 1,
        "decode_error": 1,
        "too_small": 1,
        "duplicate_url": 1,
        "missing_url": 1,
        "bad_url": 1,
        "missing_caption": 1,
    }
    with (out / data.REPORT_FILE).open(encoding="utf-8") as fh:
        report = list(csv.DictReader(fh))
    assert len(report) == 9
    assert {r["reason"] for r in report if r["url"].endswith("/missing.jpg")} == {"http_404"}
    assert state.hits["/flaky.png"] == 2  # a 503 is retried
    assert state.hits["/missing.jpg"] == 1  # a 404 is not
    assert state.hits["/slow.jpg"] == 2  # timed out, retried once, timed out again
    assert state.hits["/ng.png"] == 0

    # Fill a later-stage field, then re-run: nothing good is downloaded again and the field survives.
    write_metadata(out, [dataclasses.replace(records[0], blip_text="a roof")] + records[1:])
    before = Counter(state.hits)
    again = data.fetch_ccub(sheet, "korea", out, FAST, workers=2, progress=False)
    for path in ("/good.jpg", "/alpha.png", "/octet", "/flaky.png"):
        assert state.hits[path] == before[path]
    assert again.downloaded == 0 and again.reused == 4
    assert read_metadata(out)[0].blip_text == "a roof"


def test_fetch_redownloads_a_corrupted_local_file(server, tmp_path: Path) -> None:
    base, state = server
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"country,url,caption\nkr,{base}/good.jpg,roof\n", encoding="utf-8")
    data.fetch_ccub(sheet, "korea", tmp_path / "d", FAST, progress=False)
    (rec,) = read_metadata(tmp_path / "d")
    (tmp_path / "d" / rec.file_name).write_bytes(b"truncated")
    summary = data.fetch_ccub(sheet, "korea", tmp_path / "d", FAST, progress=False)
    assert summary.downloaded == 1 and state.hits["/good.jpg"] == 2
    with Image.open(tmp_path / "d" / rec.file_name) as img:
        assert img.size == (80, 60)


def test_download_backs_off_and_limits_size(server) -> None:
    base, state = server
    sleeps: list[float] = []
    options = FetchOptions(timeout=1, retries=2, backoff=0.5)
    with pytest.raises(data.FetchError) as info:
        data.download_bytes(f"{base}/down", options, sleep=sleeps.append)
    assert info.value.reason == "http_503"
    assert sleeps == [0.5, 1.0] and state.hits["/down"] == 3
    with pytest.raises(data.FetchError) as info:
        data.download_bytes(f"{base}/good.jpg", FetchOptions(max_bytes=100), sleep=sleeps.append)
    assert info.value.reason == "too_large"
    assert len(data.download_bytes(f"{base}/good.jpg", FetchOptions())) > 100


def test_fetch_cli(server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scoft.__main__ import main

    base, _ = server
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text(f"Country\tURL\tText\nNigeria\t{base}/ng.png\tJollof rice\nNG\t{base}/nope\tx\n", "utf-8")
    argv = ["fetch-ccub", "--csv", str(sheet), "--culture", "nigeria", "--out", str(tmp_path / "ng")]
    assert main([*argv, "--timeout", "1", "--retries", "0", "--workers", "1", "--min-side", "8"]) == 0
    out = capsys.readouterr().out
    assert "saved 1 images" in out and "http_404" in out
    assert [r.text for r in read_metadata(tmp_path / "ng")] == ["Jollof rice"]

    bad = tmp_path / "bad.csv"
    bad.write_text("country,caption\nkr,x\n", encoding="utf-8")
    assert data.fetch_main(["--csv", str(bad), "--culture", "korea", "--out", str(tmp_path / "x")]) == 2
    assert "missing column(s) ['url']" in capsys.readouterr().err


def test_culture_matcher_accepts_codes_and_names() -> None:
    korea = data.culture_matcher("korea")
    assert all(korea(v) for v in ("KR", " kor ", "Korea", "South Korea", "korean"))
    assert not korea("CN") and not korea("")
    assert data.culture_matcher("mexico")("México")
    peru = data.culture_matcher("peru", extra=["PE"])
    assert peru("Peru") and peru("pe") and not peru("korea")


def test_metadata_round_trip_and_errors(tmp_path: Path) -> None:
    records = [
        Record(
            "images/a.png", "caption é", "generic", ("neg/a_0.png", "neg/a_1.png"), "korea", "ARCH", "http://x", "CC"
        ),
        Record("images/b.png", "other"),
    ]
    write_metadata(tmp_path, records)
    assert read_metadata(tmp_path) == records
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.jsonl"]  # no temporary file left behind
    first = json.loads((tmp_path / "metadata.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert list(first) == [
        "file_name",
        "text",
        "blip_text",
        "negative_imgpath",
        "culture",
        "category",
        "source_url",
        "license",
    ]
    assert first["negative_imgpath"] == ["neg/a_0.png", "neg/a_1.png"]

    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "x"}\n\n{"text": "y"}\n', "utf-8")
    with pytest.raises(ValueError, match=r"metadata.jsonl:3"):
        read_metadata(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "nowhere")


def test_caption_fills_blip_text_and_resumes(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    data.synthesize_ccub(tmp_path, culture="korea", n_images=3, seed=1, with_blip_text=False)
    model, processor = data.load_captioner(tiny_models["captioner"])
    assert data.caption_dataset(tmp_path, model, processor, batch_size=2, max_new_tokens=5, progress=False) == 3
    records = read_metadata(tmp_path)
    assert all(r.blip_text.strip() for r in records)
    assert all(r.text.startswith(data.CATEGORY_WORDS[r.category]) for r in records)
    assert data.caption_dataset(tmp_path, model, processor, progress=False) == 0

    write_metadata(tmp_path, [dataclasses.replace(records[0], blip_text="")] + records[1:])
    from scoft.__main__ import main

    argv = ["caption", "--captioner", str(tiny_models["captioner"]), "--data", str(tmp_path), "--max-new-tokens", "4"]
    assert main(argv) == 0
    after = read_metadata(tmp_path)
    assert after[0].blip_text.strip() and after[1:] == records[1:]
    assert main([*argv, "--force"]) == 0
    assert data.caption_main(["--captioner", str(tmp_path / "none"), "--data", str(tmp_path)]) == 2


def _gradient(width: int, height: int) -> Image.Image:
    """Left-to-right ramp: any horizontal flip is visible."""
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    array = np.repeat(np.tile(ramp, (height, 1))[..., None], 3, axis=2).astype(np.uint8)
    array[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    return Image.fromarray(array)


def _set_with_negatives(root: Path, k: int = 2, size: tuple[int, int] = (96, 64)) -> Path:
    (root / "images").mkdir(parents=True)
    records = []
    for i in range(3):
        _gradient(*size).save(root / "images" / f"p{i}.png")
        negatives = []
        for j in range(k if i != 2 else 0):
            _gradient(*size).save(root / "images" / f"p{i}_neg{j}.png")
            negatives.append(f"images/p{i}_neg{j}.png")
        records.append(Record(f"images/p{i}.png", f"positive {i}", f"generic {i}", tuple(negatives), "korea"))
    write_metadata(root, records)
    return root


def test_dataset_shapes_range_and_tokens(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_models["sd"], subfolder="tokenizer")
    ds = CCUBDataset(_set_with_negatives(tmp_path), resolution=32, tokenizer=tokenizer)
    assert len(ds) == 3
    item = ds[0]
    assert item["pixel_values"].shape == (3, 32, 32) and item["pixel_values"].dtype == torch.float32
    assert item["negative_pixel_values"].shape == (2, 3, 32, 32)
    assert ds[2]["negative_pixel_values"].shape == (0, 3, 32, 32)
    assert -1.0 <= float(item["pixel_values"].min()) < -0.9 and 0.9 < float(item["pixel_values"].max()) <= 1.0
    assert item["input_ids"].shape == (77,) and item["blip_input_ids"].shape == (77,)
    assert not torch.equal(item["input_ids"], item["blip_input_ids"])
    assert item["text"] == "positive 0" and item["blip_text"] == "generic 0"

    batch = collate([ds[0], ds[2]])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["negative_pixel_values"].shape == (2, 2, 3, 32, 32)
    assert batch["negative_mask"].tolist() == [[True, True], [False, False]]
    assert batch["input_ids"].shape == (2, 77)
    assert batch["text"] == ["positive 0", "positive 2"]

    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False, collate_fn=collate)
    assert [b["pixel_values"].shape[0] for b in loader] == [2, 1]

    capped = CCUBDataset(tmp_path, resolution=32, max_negatives=1)
    assert capped[0]["negative_pixel_values"].shape == (1, 3, 32, 32)
    assert "input_ids" not in capped[0]


def test_resize_and_centre_crop_keep_the_middle(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    array = np.zeros((40, 120, 3), dtype=np.uint8)
    array[:, 40:80] = 255  # white middle third of a wide image
    Image.fromarray(array).save(tmp_path / "images" / "wide.png")
    write_metadata(tmp_path, [Record("images/wide.png", "wide")])
    ds = CCUBDataset(tmp_path, resolution=20, random_flip=False)
    pixels = ds[0]["pixel_values"]
    assert pixels.shape == (3, 20, 20)
    assert torch.all(pixels[:, :, 2:-2] == 1.0)  # resized to 60x20, centre 20 columns are the white band


def test_joint_flip_is_identical_for_positive_and_negatives(tmp_path: Path) -> None:
    root = _set_with_negatives(tmp_path)
    for center_crop in (True, False):
        ds = CCUBDataset(root, resolution=32, center_crop=center_crop, joint_flip=True, seed=3)
        flips = []
        for epoch in range(8):
            ds.set_epoch(epoch)
            item = ds[0]
            flips.append(item["flipped"])
            for negative in item["negative_pixel_values"]:
                assert torch.equal(negative, item["pixel_values"])
        assert set(flips) == {True, False}

    plain = CCUBDataset(root, resolution=32, random_flip=False)[0]["pixel_values"]
    ds = CCUBDataset(root, resolution=32, seed=3)
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        expected = plain.flip(-1) if item["flipped"] else plain
        assert torch.equal(item["pixel_values"], expected)


def test_independent_flip_differs_and_is_reproducible(tmp_path: Path) -> None:
    root = _set_with_negatives(tmp_path)
    ds = CCUBDataset(root, resolution=32, joint_flip=False, seed=5)
    mismatches = 0
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[1]
        mismatches += sum(not torch.equal(n, item["pixel_values"]) for n in item["negative_pixel_values"])
    assert mismatches > 0
    other = CCUBDataset(root, resolution=32, joint_flip=False, seed=5)
    other.set_epoch(7)
    assert torch.equal(other[1]["negative_pixel_values"], item["negative_pixel_values"])


def test_dataset_rejects_missing_files_and_empty_sets(tmp_path: Path) -> None:
    root = _set_with_negatives(tmp_path / "a")
    (root / "images" / "p0_neg1.png").unlink()
    with pytest.raises(FileNotFoundError, match="p0_neg1.png"):
        CCUBDataset(root)
    write_metadata(tmp_path / "b", [])
    with pytest.raises(ValueError, match="no records"):
        CCUBDataset(tmp_path / "b")


def test_synthesize_ccub_is_readable_and_distinct_per_culture(tmp_path: Path) -> None:
    korea = data.synthesize_ccub(tmp_path / "korea", culture="korea", n_images=4, resolution=64, seed=0)
    data.synthesize_ccub(tmp_path / "nigeria", culture="nigeria", n_images=4, resolution=64, seed=0)
    assert read_metadata(tmp_path / "korea") == korea
    assert len({r.text for r in korea}) == 4 and all("Korea" in r.text and r.blip_text for r in korea)
    ds_k = CCUBDataset(tmp_path / "korea", resolution=64, random_flip=False)
    ds_n = CCUBDataset(tmp_path / "nigeria", resolution=64, random_flip=False)
    assert ds_k[0]["pixel_values"].shape == (3, 64, 64)
    mean_k = torch.stack([ds_k[i]["pixel_values"] for i in range(4)]).mean(dim=(0, 2, 3))
    mean_n = torch.stack([ds_n[i]["pixel_values"] for i in range(4)]).mean(dim=(0, 2, 3))
    assert float((mean_k - mean_n).abs().max()) > 0.1
    again = data.synthesize_ccub(tmp_path / "again", culture="korea", n_images=4, resolution=64, seed=0)
    assert again == korea
    assert (tmp_path / "again" / korea[0].file_name).read_bytes() == (
        tmp_path / "korea" / korea[0].file_name
    ).read_bytes()
