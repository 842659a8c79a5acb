"""The paper's design, launched from placeholder images written by a mix of encoders, completed in a real browser
by one Prolific participant who can finish only by choosing ranks.

On every page an untouched Next is refused first (400, error summary, nothing advanced); then every rank is chosen
with "Rank next" (an attention check's marked image last) and the page advances, until the completion code. Every
image a page serves has one PNG structure (chunk list, IHDR) and one set of response headers (apart from the
Content-Length and Date that the image route leaves free), whatever encoder wrote the original.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.images import png_chunks
from tests.app.test_canonical_images import save, variants
from tests.e2e.conftest import REPO, LiveStudy, serve
from tests.e2e.steps import reveal, to_last

pytestmark = pytest.mark.browser

DESIGN = REPO / "study_designs" / "scoft-cvpr2024.toml"
FREE_HEADERS = {"content-length", "date"}  # the image route promises identical headers apart from these
IMAGE_SRCS = "() => Array.from(document.querySelectorAll('form.ranking img'), i => i.src)"


def mixed_encoders(manifest: Path) -> None:
    """Re-encode every placeholder with the next of nine encoders in turn, so each page mixes encoders."""
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    used = set()
    for n, e in enumerate(entries):
        im = Image.open(manifest.parent / e["file"]).convert("RGB")
        encoded = {**variants(im), "jpeg": save(im, "JPEG", quality=90)}
        name = sorted(encoded)[n % len(encoded)]
        used.add(name)
        data = encoded[name]
        (manifest.parent / e["file"]).write_bytes(data)
        e["sha256"] = hashlib.sha256(data).hexdigest()
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert len(used) == 9, used


@pytest.fixture(scope="module")
def live_mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStudy]:
    yield from serve(tmp_path_factory.mktemp("live-mixed"), DESIGN, size=64, reencode=mixed_encoders)


def png_structure(data: bytes) -> tuple[tuple[bytes, ...], bytes]:
    chunks = png_chunks(data)
    return tuple(k for k, _ in chunks), next(p for k, p in chunks if k == b"IHDR")


def check_images(page) -> tuple[tuple[bytes, ...], bytes]:
    """Fetch every image of the page as the browser does; one PNG structure and one header set for all."""
    srcs = list(dict.fromkeys(page.evaluate(IMAGE_SRCS)))  # each question shows the page's images again
    assert len(srcs) == 4, srcs
    shapes, header_sets = set(), set()
    for src in srcs:
        r = page.request.get(src)
        assert r.status == 200, (src, r.status)
        body = r.body()
        headers = r.headers
        assert int(headers["content-length"]) == len(body)
        shapes.add(png_structure(body))
        header_sets.add(tuple(sorted((k, v) for k, v in headers.items() if k not in FREE_HEADERS)))
    assert len(shapes) == 1, shapes
    assert len(header_sets) == 1, header_sets
    headers = dict(header_sets.pop())
    assert headers["content-type"] == "image/png"
    assert "last-modified" not in headers and "etag" not in headers
    return shapes.pop()


def marked_index(page, crit: str) -> int | None:
    return page.evaluate(
        """c => { const m = document.querySelector(`fieldset[data-criterion="${c}"] .marker`);
                  return m ? Number(m.closest('li').dataset.index) : null; }""",
        crit,
    )


def rank_everything(page) -> None:
    """Press "Rank next" on each image of each question, in the shown order but with a marked image last."""
    crits = page.eval_on_selector_all("fieldset.criterion", "els => els.map(e => e.dataset.criterion)")
    assert crits
    for crit in crits:
        fs = f'fieldset[data-criterion="{crit}"]'
        reveal(page, crit)
        n = page.locator(f"{fs} li.item").count()
        marked = marked_index(page, crit)
        order = [i for i in range(n) if i != marked] + ([marked] if marked is not None else [])
        for rank, i in enumerate(order, start=1):
            page.locator(f"{fs} li.item[data-index='{i}'] button.tap").click()
            page.wait_for_function(
                "([sel, v]) => document.querySelector(sel).value === v",
                arg=[f"select[name=rank-{crit}-{i}]", str(rank)],
            )


def press_next(page) -> int:
    to_last(page)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("button.next")
    page.wait_for_load_state("load")
    page.wait_for_selector("form.ranking, #completion-code")
    return posted.value.status


def test_paper_round_of_mixed_encoders_completes_only_by_choosing_ranks(live_mixed, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    query = "?PROLIFIC_PID=5f0e2b7c9d1a4e0012345678&STUDY_ID=65aa00bb11cc22dd33ee44ff&SESSION_ID=sess-e2e-1"
    page.goto(f"{live_mixed.base_url}/s/{live_mixed.round_id}{query}")
    page.check("input[name=agree]")
    page.click("button[type=submit]")
    page.check("input[value=mexico]")
    page.click("button[type=submit]")
    page.click("button[type=submit]")
    page.wait_for_selector("form.ranking")

    total = int(page.get_attribute("progress.progress-bar", "max"))
    assert total >= 20  # the design's 20 pages per participant, plus its attention checks and repeat page
    seen_pages, checks, shapes = [], 0, set()
    while page.query_selector("#completion-code") is None:
        page.wait_for_selector("fieldset.enhanced")
        before, heading = page.get_attribute("form.ranking", "action"), page.inner_text(".progress")
        assert heading not in seen_pages, f"{heading} shown twice"
        seen_pages.append(heading)
        shapes.add(check_images(page))

        assert press_next(page) == 400, f"{heading}: an untouched Next was accepted"
        assert page.get_attribute("form.ranking", "action") == before
        assert page.inner_text(".progress") == heading
        assert page.locator("#error-summary").is_visible()
        assert page.locator("#error-summary a").count() >= 1

        page.wait_for_selector("fieldset.enhanced")
        checks += page.locator("fieldset.criterion .marker").count()
        rank_everything(page)
        assert press_next(page) in (200, 303), f"{heading}: a fully ranked page was refused"
        assert page.query_selector("#error-summary") is None, f"{heading}: {page.inner_text('#error-summary')}"
    assert len(seen_pages) == total, (len(seen_pages), total)
    assert checks >= 1, "the design's attention checks were never shown"
    assert shapes == {((b"IHDR", b"IDAT", b"IEND"), bytes.fromhex("0000004000000040") + b"\x08\x02\x00\x00\x00")}
    assert page.inner_text("#completion-code") == "SCOFT2024"
    assert not errors, errors
    context.close()
