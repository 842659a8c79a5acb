"""``python -m scoft.demo``: the whole researcher path on the tiny models, then a re-run that reuses everything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoft import demo
from scoft.sample import LORA_WEIGHT_NAME, sha256_file
from study_designs.schema import load_design

DEMO = Path(__file__).resolve().parents[2] / "study_designs" / "demo.toml"
FAST = ["--images", "2", "--negatives", "1", "--train-steps", "1", "--sample-steps", "2", "--no-progress"]


def test_lora_runs_follow_the_design(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(demo.ENV, str(tmp_path))
    design = load_design(DEMO)
    assert demo.tiny_root(design) == tmp_path / "tiny"
    runs = demo.lora_runs(design)
    assert sorted((c, v) for c, v, _ in runs) == [
        ("korea", "m"),
        ("korea", "mpc"),
        ("nigeria", "m"),
        ("nigeria", "mpc"),
    ]
    assert tmp_path / "runs" / "nigeria" / "mpc" in {p for _, _, p in runs}


def test_demo_runs_the_whole_path_and_reuses_it(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    var = tmp_path / "var"
    monkeypatch.setenv(demo.ENV, str(var / "models"))
    (var / "models" / "tiny").mkdir(parents=True)
    for part in ("sd", "controlnet", "depth", "backbone"):  # the session's tiny models stand in for a build
        (var / "models" / "tiny" / part).symlink_to(tiny_models[part], target_is_directory=True)

    assert demo.main(["--design", str(DEMO), "--var", str(var), *FAST]) == 0
    design = load_design(DEMO)
    manifest = var / "rounds" / "demo" / "manifest.jsonl"
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert len(lines) == len(design.pages()) * len(design.models) == 24
    variant_of = {m.id: m.variant for m in design.models}
    for culture in ("korea", "nigeria"):
        meta = [json.loads(x) for x in (var / "data" / culture / "metadata.jsonl").read_text().splitlines()]
        assert len(meta) == 2 and all(len(r["negative_imgpath"]) == 1 for r in meta)
        for variant in ("m", "mpc"):
            lora = var / "models" / "runs" / culture / variant / LORA_WEIGHT_NAME
            used = {
                r["checkpoint"]["lora_sha256"]
                for r in lines
                if r["culture"] == culture and variant_of[r["model_id"]] == variant
            }
            assert used == {sha256_file(lora)}
    capsys.readouterr()

    before = manifest.read_bytes()
    assert demo.main(["--design", str(DEMO), "--var", str(var), *FAST]) == 0
    out = capsys.readouterr().out
    assert "24 images (0 sampled, 24 reused)" in out
    assert " -> " not in out  # no LoRA trained again
    assert manifest.read_bytes() == before
