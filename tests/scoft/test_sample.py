"""``scoft sample`` on the tiny model: reproducible bytes, the manifest contract, resumption, blinding."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scoft import sample
from study_designs.schema import load_design

STEPS = 2
MODELS = ("base_sd", "scoft_m")


def write_lora(sd_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA on the tiny UNet with random, non-zero weights, in the diffusers file layout."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(sd_dir / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(unet))
    return out / sample.LORA_WEIGHT_NAME


def design_text(sd: Path, runs: Path) -> str:
    return f"""
id = "t"
title = "tiny"
[[cultures]]
id = "korea"
label = "Korea"
adjective = "Korean"
[[cultures]]
id = "nigeria"
label = "Nigeria"
adjective = "Nigerian"
[[models]]
id = "base_sd"
label = "base"
base = "{sd}"
variant = "base"
[[models]]
id = "scoft_m"
label = "tuned"
base = "${{TINY_SD_FOR_TEST:-{sd}}}"
lora = "{runs}/{{culture}}/m"
variant = "m"
[[criteria]]
id = "description"
question = "Q?"
best_label = "best"
worst_label = "worst"
[[prompts]]
id = "k-street"
culture = "korea"
text = "Photo of a street, in Korea"
seeds = [3, 4]
[[prompts]]
id = "n-food"
culture = "nigeria"
text = "A table of food in Nigeria"
seeds = [5, 6]
[assignment]
pages_per_participant = 2
target_rankings_per_page = 1
[recruitment]
completion_code = "DONE"
[consent]
text = "ok"
content_warning = "ok"
"""


@pytest.fixture(scope="module")
def study(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("study")
    for i, culture in enumerate(("korea", "nigeria")):
        write_lora(tiny_models["sd"], root / "runs" / culture / "m", seed=i)
    path = root / "design.toml"
    path.write_text(design_text(tiny_models["sd"], root / "runs"))
    return path


@pytest.fixture(scope="module")
def sampled(study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sample.SampleResult]:
    out = tmp_path_factory.mktemp("round")
    result = sample.run(
        load_design(study), out, settings=sample.Settings(steps=STEPS), batch_size=3, device="cpu", progress=False
    )
    return out, result


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / sample.MANIFEST).read_text().splitlines()]


def test_work_list_covers_every_culture_prompt_seed_and_model(study: Path) -> None:
    design = load_design(study)
    work = sample.build_work(design)
    keys = {(w.culture, w.prompt_id, w.seed, w.model_id) for w in work}
    assert len(work) == len(keys) == 2 * 1 * 2 * 2
    assert {w.lora for w in work if w.model_id == "scoft_m"} == {
        str(study.parent / "runs" / c / "m") for c in ("korea", "nigeria")
    }
    # grouped: each (base, lora) appears as one contiguous run
    runs = [k for k, _ in itertools.groupby((w.base, w.lora) for w in work)]
    assert len(runs) == len(set(runs))
    assert {w.base for w in sample.build_work(design, base_override="/elsewhere")} == {"/elsewhere"}


def test_manifest_has_one_line_per_image_and_every_hash_matches(sampled: tuple[Path, sample.SampleResult]) -> None:
    out, result = sampled
    lines = manifest_lines(out)
    assert result.n_sampled == len(lines) == 2 * 1 * 2 * len(MODELS)
    assert {(r["culture"], r["prompt_id"], r["seed"], r["model_id"]) for r in lines} == {
        (c, p, s, m)
        for c, p, seeds in (("korea", "k-street", (3, 4)), ("nigeria", "n-food", (5, 6)))
        for s in seeds
        for m in MODELS
    }
    assert len({r["image_id"] for r in lines}) == len(lines)
    for r in lines:
        assert set(r) == {
            "image_id", "file", "sha256", "model_id", "culture", "prompt_id", "prompt", "seed", "width", "height",
            "sampler", "checkpoint", "created_at",
        }  # fmt: skip
        assert hashlib.sha256((out / r["file"]).read_bytes()).hexdigest() == r["sha256"]
        assert (r["width"], r["height"]) == (64, 64)
        assert r["sampler"] == {"scheduler": "DPMSolverMultistepScheduler", "steps": STEPS, "guidance": 4.5}
        lora = r["checkpoint"]["lora_sha256"]
        if r["model_id"] == "base_sd":
            assert lora is None
        else:
            assert len(lora) == 64
        assert r["model_id"] not in r["image_id"]


def test_lora_changes_the_image_and_each_culture_uses_its_own(sampled: tuple[Path, sample.SampleResult]) -> None:
    out, _ = sampled
    by_key = {(r["prompt_id"], r["seed"], r["model_id"]): r for r in manifest_lines(out)}
    assert by_key[("k-street", 3, "base_sd")]["sha256"] != by_key[("k-street", 3, "scoft_m")]["sha256"]
    assert by_key[("k-street", 3, "scoft_m")]["checkpoint"] != by_key[("n-food", 5, "scoft_m")]["checkpoint"]


def test_png_bytes_do_not_depend_on_batch_size_or_order(
    study: Path, sampled: tuple[Path, sample.SampleResult], tmp_path: Path
) -> None:
    out, _ = sampled
    design = load_design(study)
    reference = {r["file"]: (out / r["file"]).read_bytes() for r in manifest_lines(out)}
    sampler = sample.Sampler("cpu", sample.Settings(steps=STEPS))
    work = sample.build_work(design)
    groups = [list(g) for _, g in itertools.groupby(work, key=lambda w: (w.base, w.lora))]
    shuffled = [w for g in reversed(groups) for w in g[1::2] + g[0::2]]
    for size, order in ((1, list(reversed(work))), (4, shuffled), (3, work)):
        for chunk in sample.batches(order, size):
            sampler.use(chunk[0].base, chunk[0].lora)
            for item, image in zip(chunk, sampler.generate(chunk), strict=True):
                assert sample.png_bytes(image) == reference[item.file], (size, item)


def test_rerun_samples_nothing_and_keeps_the_manifest_bytes(
    study: Path, sampled: tuple[Path, sample.SampleResult]
) -> None:
    out, _ = sampled
    before = (out / sample.MANIFEST).read_bytes()
    result = sample.run(load_design(study), out, settings=sample.Settings(steps=STEPS), device="cpu", progress=False)
    assert (result.n_sampled, result.n_reused) == (0, 8)
    assert (out / sample.MANIFEST).read_bytes() == before


def test_changed_or_deleted_image_is_sampled_again(study: Path, tmp_path: Path) -> None:
    design = load_design(study)
    settings = sample.Settings(steps=STEPS)
    sample.run(design, tmp_path, settings=settings, device="cpu", progress=False)
    lines = manifest_lines(tmp_path)
    (tmp_path / lines[0]["file"]).write_bytes(b"not the image")
    (tmp_path / lines[1]["file"]).unlink()
    result = sample.run(design, tmp_path, settings=settings, device="cpu", progress=False)
    assert (result.n_sampled, result.n_reused) == (2, 6)
    assert manifest_lines(tmp_path)[0]["sha256"] == lines[0]["sha256"]
    # other settings are other images
    result = sample.run(design, tmp_path, settings=sample.Settings(steps=3), device="cpu", progress=False)
    assert result.n_sampled == 8


def test_missing_lora_fails_before_sampling_and_names_every_missing_path(study: Path, tmp_path: Path) -> None:
    text = study.read_text().replace('/{culture}/m"', '/{culture}/nothing-here"')
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "scoft", "sample", "--design", str(bad), "--out", str(out), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    for culture in ("korea", "nigeria"):
        assert str(study.parent / "runs" / culture / "nothing-here" / sample.LORA_WEIGHT_NAME) in proc.stderr
    assert not list(out.rglob("*.png")) if out.exists() else True


def test_png_has_no_text_chunk_and_no_model_id(sampled: tuple[Path, sample.SampleResult]) -> None:
    out, _ = sampled
    for r in manifest_lines(out):
        data = (out / r["file"]).read_bytes()
        chunks, pos = [], 8
        while pos < len(data):
            length = int.from_bytes(data[pos : pos + 4], "big")
            chunks.append(data[pos + 4 : pos + 8])
            pos += 12 + length
        assert not {b"tEXt", b"zTXt", b"iTXt", b"eXIf"} & set(chunks)
        for secret in (*MODELS, r["model_id"], "korea", "lora"):
            assert secret.encode() not in data


def test_round_launch_accepts_the_manifest(study: Path, sampled: tuple[Path, sample.SampleResult], tmp_path: Path):
    pytest.importorskip("app.launch")
    out, _ = sampled
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'study.db'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    cmd = [sys.executable, "-m", "app.rounds", "launch", "--design", str(study), "--manifest"]
    cmd += [str(out / sample.MANIFEST), "--round", "r1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "8 images" in proc.stdout
    again = subprocess.run([*cmd, "--reuse"], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr


def test_accelerate_launch_splits_the_work_and_merges_one_manifest(
    study: Path, sampled: tuple[Path, sample.SampleResult], tmp_path: Path
) -> None:
    ref, _ = sampled
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "scoft", "sample", "--design", str(study)]
    cmd += ["--out", str(out), "--steps", str(STEPS), "--batch-size", "3", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("8 images (8 sampled, 0 already done)") == 1
    hashes = {r["file"]: r["sha256"] for r in manifest_lines(out)}
    assert hashes == {r["file"]: r["sha256"] for r in manifest_lines(ref)}
    assert not list(out.glob(".manifest.jsonl.part*"))


def test_a_lora_that_attaches_nothing_is_refused_naming_the_file(
    study: Path, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """A peft-keyed file (old checkpoints) loads as nothing in stock diffusers: refused before any image is made."""
    from safetensors.torch import load_file, save_file

    runs = tmp_path / "runs"
    for culture in ("korea", "nigeria"):
        good = load_file(str(study.parent / "runs" / culture / "m" / sample.LORA_WEIGHT_NAME))
        peft_keyed = {k.removeprefix("unet."): v for k, v in good.items()}
        (runs / culture / "m").mkdir(parents=True)
        save_file(peft_keyed, str(runs / culture / "m" / sample.LORA_WEIGHT_NAME))
    bad = tmp_path / "design.toml"
    bad.write_text(design_text(tiny_models["sd"], runs))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "scoft", "sample", "--design", str(bad), "--out", str(out), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m scoft sample: error: LoRA file ") and "attaches no adapter to the UNet" in last
    assert str(runs / "korea" / "m" / sample.LORA_WEIGHT_NAME) in last and "export-lora" in last
    assert not out.exists() or not list(out.rglob("*.png"))


def test_sampler_checks_the_adapter_after_loading(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """Keys that look like the UNet's but name no module: loading attaches nothing, and the sampler says so."""
    import torch
    from safetensors.torch import save_file

    path = tmp_path / sample.LORA_WEIGHT_NAME
    layers = {"unet.no_such_block.to_q.lora.down.weight": torch.zeros(4, 32)}
    save_file(layers, str(path))
    sampler = sample.Sampler("cpu", sample.Settings(steps=2))
    with pytest.raises(sample.SampleError, match="could not be loaded|attaches no adapter") as err:
        sampler.use(str(tiny_models["sd"]), str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert sampler.lora is None
    assert not sampler.pipe.get_list_adapters()
