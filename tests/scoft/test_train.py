"""Training: every variant learns on a fixed tiny batch, the CLI writes what stock diffusers loads, resume is exact."""

import dataclasses
import statistics
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scoft.config import TrainConfig, dump_config, load_config
from scoft.data import read_metadata, synthesize_ccub, write_metadata
from scoft.train import StepBatchSampler, main, read_train_log, train

FAST = {
    "resolution": 64,
    "train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "mixed_precision": "no",
    "lora_rank": 4,
    "lora_alpha": 4,
    "learning_rate": 5e-3,
    "lr_schedule": "constant",
    "chain_length": 3,
    "contrastive_interval": 5,
    "checkpointing_steps": 1000,
    "embedding_backend": "local",
}


def make_data(folder: Path, negatives: int) -> Path:
    """Two synthetic images (larger than the training resolution), each with ``negatives`` noise negatives."""
    records = synthesize_ccub(folder, culture="korea", n_images=2, resolution=80, seed=0)
    rng = np.random.default_rng(0)
    (folder / "negatives").mkdir(exist_ok=True)
    out = []
    for i, rec in enumerate(records):
        paths = []
        for k in range(negatives):
            rel = f"negatives/{i}_{k}.png"
            Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(folder / rel)
            paths.append(rel)
        out.append(dataclasses.replace(rec, negative_imgpath=tuple(paths)))
    write_metadata(folder, out)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("ccub"), negatives=2)


@pytest.fixture(scope="module")
def data_without_negatives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("ccub-plain"), negatives=0)


def write_config(path: Path, **overrides: object) -> Path:
    path.write_text(dump_config(TrainConfig(**{**FAST, **overrides})))
    return path


@pytest.fixture(scope="module")
def pipe(tiny_models: dict[str, Path]):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def render(pipe) -> np.ndarray:
    gen = torch.Generator().manual_seed(0)
    return pipe("a building", num_inference_steps=2, generator=gen, output_type="np").images


@pytest.mark.parametrize("variant", ["ldm", "m", "mp", "mpc"])
def test_variant_trains_on_a_fixed_batch_and_loads_in_stock_diffusers(
    variant: str, tiny_models, data_dir, pipe, tmp_path
) -> None:
    out = tmp_path / variant
    cfg = write_config(tmp_path / "train.toml")
    argv = ["--base", str(tiny_models["sd"]), "--data", str(data_dir), "--variant", variant, "--out", str(out)]
    argv += ["--config", str(cfg), "--max-steps", "30", "--backbone", str(tiny_models["backbone"]), "--no-progress"]
    assert main(argv) == 0

    rows = read_train_log(out / "train_log.csv")
    assert [r["step"] for r in rows] == list(range(1, 31))
    losses = [r["loss"] for r in rows]
    assert statistics.mean(losses[-10:]) < 0.95 * statistics.mean(losses[:10])
    chain_steps = {r["step"] for r in rows if r["loss_p"] is not None or r["loss_c"] is not None}
    expected_chain = set(range(1, 31, 5)) if variant in ("mp", "mpc") else set()
    assert chain_steps == expected_chain
    assert all((r["loss_m"] is None) == (variant == "ldm") for r in rows)
    # term c (the contrastive backbone) on chain steps of mp (positive pull only) and mpc (against the negatives)
    assert all((r["loss_c"] is not None) == (r["step"] in expected_chain) for r in rows)
    assert all((r["loss_p"] is not None) == (r["step"] in expected_chain) for r in rows)
    if variant == "ldm":
        assert all(r["loss"] == pytest.approx(r["loss_ldm"]) for r in rows)
    else:
        plain = [r for r in rows if r["step"] not in expected_chain]
        assert all(r["loss"] == pytest.approx(0.7 * r["loss_ldm"] + 0.3 * r["loss_m"], rel=1e-5) for r in plain)

    written = tomllib.loads((out / "config.toml").read_text())
    assert written["train"]["variant"] == variant
    assert written["run"]["package_version"]
    assert load_config(out / "config.toml").variant == variant

    base = render(pipe)
    pipe.load_lora_weights(out)
    try:
        assert np.abs(render(pipe) - base).max() > 1e-4
    finally:
        pipe.unload_lora_weights()
    assert np.allclose(render(pipe), base, atol=1e-6)


def test_resume_reproduces_the_uninterrupted_run(tiny_models, data_dir, tmp_path) -> None:
    cfg = TrainConfig(
        **{
            **FAST,
            "variant": "mpc",
            "gradient_accumulation_steps": 2,
            "train_batch_size": 1,
            "grad_step": "random",
            "contrastive_interval": 3,
            "center_crop": False,
            "random_flip": True,
            "lr_schedule": "cosine",
            "checkpointing_steps": 2,
            "checkpoints_total_limit": 2,
            "max_train_steps": 6,
        }
    )
    common = {"backbone_dir": tiny_models["backbone"], "show_progress": False}
    straight = train(cfg, tiny_models["sd"], data_dir, tmp_path / "a", **common)
    first = train(cfg, tiny_models["sd"], data_dir, tmp_path / "b", stop_after=3, **common)
    assert not first.finished and not (tmp_path / "b" / "pytorch_lora_weights.safetensors").exists()
    resumed = train(cfg, tiny_models["sd"], data_dir, tmp_path / "b", resume=True, **common)
    assert resumed.finished

    rows_a, rows_b = read_train_log(straight.log_path), read_train_log(resumed.log_path)
    assert [r["step"] for r in rows_b] == list(range(1, 7))
    assert any(r["loss_c"] is not None for r in rows_a)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key, value in ra.items():
            assert (value is None) == (rb[key] is None), key
            if value is not None:
                assert rb[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (ra["step"], key)

    from safetensors.torch import load_file

    wa, wb = load_file(str(straight.lora_path)), load_file(str(resumed.lora_path))
    assert wa.keys() == wb.keys()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    kept = sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-6"]


def test_mpc_without_negatives_fails_with_a_clear_message(tiny_models, data_without_negatives, tmp_path, capsys):
    cfg = TrainConfig(**FAST, variant="mpc", max_train_steps=1)
    with pytest.raises(ValueError, match="needs negatives"):
        train(cfg, tiny_models["sd"], data_without_negatives, tmp_path / "x", backbone_dir=tiny_models["backbone"])
    argv = ["--base", str(tiny_models["sd"]), "--data", str(data_without_negatives), "--variant", "mpc"]
    assert main([*argv, "--out", str(tmp_path / "y"), "--backbone", str(tiny_models["backbone"])]) == 2
    assert "negative_imgpath" in capsys.readouterr().err
    assert read_metadata(data_without_negatives)  # the data itself is fine for the other variants


def test_step_batch_sampler_is_a_seeded_permutation_per_epoch_split_across_processes() -> None:
    shards = [StepBatchSampler(12, 2, seed=7, start=0, stop=3, num_processes=2, process_index=r) for r in (0, 1)]
    epoch0 = [key for s in shards for batch in s for key in batch]
    assert sorted(epoch0) == [(0, i) for i in range(12)]
    assert list(shards[0]) != sorted(shards[0])  # shuffled
    full = StepBatchSampler(12, 2, seed=7, start=0, stop=6, num_processes=2, process_index=0)
    again = StepBatchSampler(12, 2, seed=7, start=2, stop=6, num_processes=2, process_index=0)
    assert list(again) == list(full)[2:]
    epoch1 = list(full)[3:]
    assert all(e == 1 for batch in epoch1 for e, _ in batch)
    assert [i for b in epoch1 for _, i in b] != [i for b in list(full)[:3] for _, i in b]
    with pytest.raises(ValueError, match="cannot fill"):
        StepBatchSampler(3, 2, seed=0, start=0, stop=1, num_processes=2)


def test_config_defaults_follow_the_authors_run_and_round_trip(tmp_path) -> None:
    cfg = TrainConfig()
    assert (cfg.lora_rank, cfg.learning_rate, cfg.gradient_accumulation_steps, cfg.seed) == (64, 1e-4, 4, 1024)
    assert cfg.loss_weights() == {"ldm": 0.7, "m": 0.3, "p": 0.01, "c": 0.05}
    assert TrainConfig(variant="ldm").loss_weights() == {"ldm": 1.0}
    assert TrainConfig(variant="mp").loss_weights() == {"ldm": 0.7, "m": 0.3, "p": 0.01, "c": 0.05}
    assert (cfg.lr_schedule, cfg.chain_sampler, cfg.embedding_backend) == ("authors", "ddpm", "dreamsim")
    assert (TrainConfig(variant="mp").uses_negatives, cfg.uses_negatives) == (False, True)
    assert (cfg.contrastive_interval, cfg.chain_length, cfg.guidance_scale, cfg.grad_step) == (10, 20, 4.5, "first")
    path = tmp_path / "c.toml"
    path.write_text(dump_config(cfg.model_copy(update={"margin": 0.0, "lora_target_modules": ("to_q",)})))
    assert load_config(path).lora_target_modules == ("to_q",)
    assert load_config(path, seed=3).seed == 3
    path.write_text("[train]\nno_such_field = 1\n")
    with pytest.raises(ValueError, match="no_such_field"):
        load_config(path)
    with pytest.raises(ValueError, match="triplet"):
        TrainConfig(margin=0.2)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_training_on_cuda_with_the_authors_defaults(tiny_models, data_dir, tmp_path) -> None:
    """fp16 on CUDA with the defaults that reproduce the authors' run: ddpm chain, authors' lr schedule, and
    diffusers-format checkpoints that a stock fp16 pipeline loads."""
    overrides = {"variant": "mpc", "mixed_precision": "fp16", "gradient_checkpointing": True, "max_train_steps": 6}
    overrides |= {"lr_schedule": "authors", "gradient_accumulation_steps": 2, "checkpointing_steps": 3}
    cfg = TrainConfig(**{**FAST, **overrides})
    assert cfg.chain_sampler == "ddpm"
    backbone = tiny_models["backbone"]
    result = train(cfg, tiny_models["sd"], data_dir, tmp_path, backbone_dir=backbone, show_progress=False)
    rows = read_train_log(result.log_path)
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert any(r["loss_c"] is not None for r in rows)
    # authors' schedule: cosine over 6 x 2 steps, stepped once per optimizer step
    assert rows[-1]["lr"] / cfg.learning_rate == pytest.approx(0.5 * (1 + np.cos(np.pi * 5 / 12)), rel=1e-5)
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    weights = load_file(str(result.lora_path))
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())
    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None, dtype=torch.float16)
    pipe = pipe.to("cuda")
    pipe.set_progress_bar_config(disable=True)
    base = render(pipe)
    for folder in (tmp_path / "checkpoint-3", tmp_path):
        assert all(k.startswith("unet.") for k in load_file(str(folder / "pytorch_lora_weights.safetensors")))
        pipe.load_lora_weights(folder)
        try:
            assert np.abs(render(pipe) - base).max() > 1e-3
        finally:
            pipe.unload_lora_weights()


@pytest.mark.parametrize("grad_step", ["first", "last"])
def test_contrastive_gradient_reaches_only_the_lora_through_the_recorded_step(tiny_models, data_dir, grad_step):
    from scoft.data import CCUBDataset, collate
    from scoft.features import build_backbones
    from scoft.train import StepContext, load_models, micro_step_losses, prepare_models, tokenize

    cfg = TrainConfig(**{**FAST, "variant": "mpc", "grad_step": grad_step, "chain_length": 4})
    models = load_models(tiny_models["sd"])
    torch.manual_seed(0)
    params = prepare_models(models, cfg, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        for p in params:
            p.normal_(0, 0.05)
        null = models.text_encoder(tokenize(models.tokenizer, [""]))[0]
    backbones = build_backbones(cfg, tiny_models["backbone"])
    calls: list[bool] = []
    hook = models.unet.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    ctx = StepContext(cfg, models, models.unet, models.unet, null, backbones, torch.float32, torch.device("cpu"))
    dataset = CCUBDataset(data_dir, resolution=64, tokenizer=models.tokenizer, max_negatives=2)
    batch = collate([dataset[0], dataset[1]])
    try:
        terms = micro_step_losses(ctx, batch, torch.Generator().manual_seed(0), chain=True)
    finally:
        hook.remove()
    # training pass (graph), memorization + null (no graph), then chain steps 1..3: graph only at the recorded one,
    # and there only for the conditional call (the unconditional one runs first, without graph)
    expected = [True, False] + [False, False] + ([False, True] if grad_step == "last" else [False])
    assert calls == expected
    terms["c"].backward()
    lora = [p for n, p in models.unet.named_parameters() if "lora_" in n]
    assert sum(p.grad.abs().sum() for p in lora if p.grad is not None) > 0
    frozen = [p for n, p in models.unet.named_parameters() if "lora_" not in n]
    frozen += list(models.vae.parameters()) + list(models.text_encoder.parameters())
    for backbone in backbones.distances.values():
        frozen += list(getattr(backbone, "vgg", backbone).parameters())
    assert all(p.grad is None for p in frozen)


class SquaredDistance:
    """A backbone whose features are the flattened image and whose distance is the summed squared difference."""

    def __init__(self) -> None:
        self.seen = 0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        self.seen += images.shape[0]
        return images.flatten(1)

    def compare(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        return (fa - fb).pow(2).sum(-1)


def test_negative_distances_skip_padding_and_keep_the_sample_gradient() -> None:
    from scoft.train import negative_distances

    backbone = SquaredDistance()
    x_hat = torch.zeros(2, 1, 1, 2, requires_grad=True)
    negatives = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[3.0, 3.0], [0.0, 0.0]]]).view(2, 2, 1, 1, 2)
    mask = torch.tensor([[True, True], [True, False]])
    d = negative_distances(backbone, backbone.features(x_hat), negatives, mask)
    assert d.tolist() == [[1.0, 4.0], [18.0, 0.0]]
    assert backbone.seen == 2 + 3  # the sample rows, then only the three real negatives
    d.sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    empty = negative_distances(backbone, backbone.features(x_hat), negatives[:, :0], mask[:, :0])
    assert empty.shape == (2, 0)
