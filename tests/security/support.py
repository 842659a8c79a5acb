"""Designs built to catch leaks and injections, and a participant crawler that records every response it sees."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient

from tests.app.studybot import parse
from tests.reliability.formclient import choose_ranks


@dataclass(frozen=True)
class Spec:
    title: str = "Image study"
    cultures: tuple[tuple[str, str, str], ...] = (("korea", "Korea", "Korean"), ("nigeria", "Nigeria", "Nigerian"))
    models: tuple[tuple[str, str], ...] = (("sd", "Stable Diffusion"), ("scoft_m", "SCoFT+M"), ("scoft_mpc", "SCoFT"))
    question: str = "How well does each image represent {adjective} culture?"
    best: str = "Best"
    worst: str = "Worst"
    prompt_text: str = "Photo of a street, in {label}"
    seeds: tuple[int, ...] = (11, 12)
    consent: str = "You will rank images."
    warning: str = "Some images may be upsetting."
    completion_code: str = "SEC-DONE"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def design_toml(spec: Spec) -> str:
    """A valid design (2 prompts per culture, every seed in ``spec.seeds``) carrying the spec's strings."""
    out = [f'id = "sec"\ntitle = {_q(spec.title)}\nseed = 5\n']
    for cid, label, adj in spec.cultures:
        out.append(f"[[cultures]]\nid = {_q(cid)}\nlabel = {_q(label)}\nadjective = {_q(adj)}\n")
    for i, (mid, label) in enumerate(spec.models):
        lora = "" if i == 0 else f'lora = "runs/{{culture}}/{mid}"\n'
        variant = "base" if i == 0 else "m"
        out.append(
            f'[[models]]\nid = {_q(mid)}\nlabel = {_q(label)}\nbase = "models/base"\n{lora}variant = "{variant}"\n'
        )
    out.append(
        f'[[criteria]]\nid = "relevance"\nquestion = {_q(spec.question)}\nbest_label = {_q(spec.best)}\n'
        f"worst_label = {_q(spec.worst)}\nshow_prompt = true\n"
    )
    out.append(
        '[[criteria]]\nid = "offensiveness"\nquestion = "How offensive is each image?"\n'
        'best_label = "Least offensive"\nworst_label = "Most offensive"\nallow_skip = true\n'
    )
    for cid, label, _ in spec.cultures:
        for k in (1, 2):
            seeds = ", ".join(str(s + 100 * k) for s in spec.seeds)
            text = spec.prompt_text.replace("{label}", label) + f" ({k})"
            out.append(f'[[prompts]]\nid = "{cid}-p{k}"\nculture = "{cid}"\ntext = {_q(text)}\nseeds = [{seeds}]\n')
    out.append(
        "[assignment]\npages_per_participant = 3\ntarget_rankings_per_page = 2\nsame_culture_only = true\n"
        'position_balance = "latin"\ncriteria_order = "counterbalanced"\nlease_minutes = 30\n'
    )
    out.append("[quality]\nattention_checks = 1\nmin_seconds_per_page = 1\nrepeat_pages = 1\n")
    out.append(
        f'[recruitment]\ncompletion_code = "{spec.completion_code}"\n'
        'completion_url = "https://app.prolific.com/submissions/complete?cc=SEC-DONE"\nplatform = "prolific"\n'
    )
    out.append(f'[consent]\ntext = """\n{spec.consent}\n"""\ncontent_warning = {_q(spec.warning)}\n')
    return "\n".join(out)


def write_design(spec: Spec, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(design_toml(spec), encoding="utf-8")
    return path


@dataclass
class Seen:
    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Crawl:
    code: str = ""
    seen: list[Seen] = field(default_factory=list)
    pages: int = 0

    def record(self, r) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(Seen(r.request.method, str(r.request.url), r.status_code, dict(r.headers), bytes(r.content)))


def crawl_participant(
    client: TestClient, round_id: str, culture: str, params: dict[str, str] | None = None, *, seed: str = "c"
) -> Crawl:
    """Walk the whole study as a browser without JavaScript would, fetching every image and link it is shown."""
    crawl = Crawl()
    client.cookies.clear()
    r = client.get(f"/s/{round_id}", params=params, follow_redirects=False)
    fetched: set[str] = set()
    for _ in range(200):
        crawl.record(r)
        if r.status_code in (302, 303, 307):
            loc = r.headers["location"]
            crawl.code = crawl.code or (loc.rsplit("/p/", 1)[-1] if "/p/" in loc else "")
            r = client.get(loc, follow_redirects=False)
            continue
        assert r.status_code == 200, r.text[:500]
        html = r.text
        for url in re.findall(r'(?:src|href)="(/[^"]*)"', html):
            if url not in fetched:
                fetched.add(url)
                crawl.record(client.get(url, follow_redirects=False))
        forms = parse(html).forms
        if not forms:
            return crawl
        f = forms[0]
        data = dict(f.hidden)
        if f.action.endswith("/consent"):
            data["agree"] = "yes"
        elif f.action.endswith("/profile"):
            data["culture"] = culture
        elif "/page/" in f.action:
            n_by: dict[str, int] = {}
            for name in f.selects:
                crit, idx = name.removeprefix("rank-").rsplit("-", 1)
                n_by[crit] = max(n_by.get(crit, 0), int(idx) + 1)
            for crit, n in n_by.items():
                ranks = choose_ranks(random.Random(f"{seed}{f.action}{crit}"), n, f.marked.get(crit))
                data.update({f"rank-{crit}-{i}": str(v) for i, v in enumerate(ranks)})
            crawl.pages += 1
        r = client.post(f.action, data=data, follow_redirects=False)
    raise AssertionError("the study did not end")
