"""Designs built to catch leaks and injections (the crawling participant is ``tests.factories.crawl_participant``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
