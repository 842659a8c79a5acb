"""Cached latents and text embeddings train the LoRA the uncached path trains; micro-batches read what they use."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scoft.config import TrainConfig
from scoft.data import CCUBDataset, collate, synthesize_ccub, write_metadata
from scoft.loading import EpochIndexed, ReadingSampler, StepBatchSampler, reads_for
from scoft.train import read_train_log, train

FAST = {
    "resolution": 64,
    "train_batch_size": 2,
    "gradient_accumulation_steps": 2,
    "mixed_precision": "no",
    "lora_rank": 4,
    "lora_alpha": 4,
    "learning_rate": 5e-3,
    "lr_schedule": "constant",
    "embedding_backend": "local",
    "chain_length": 3,
    "contrastive_interval": 3,
    "random_flip": True,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four non-square images (so the crop matters), each with two noise negatives."""
    folder = tmp_path_factory.mktemp("ccub-cache")
    records = synthesize_ccub(folder, culture="india", n_images=4, resolution=64, seed=1)
    rng = np.random.default_rng(1)
    (folder / "negatives").mkdir()
    out = []
    for i, rec in enumerate(records):
        wide = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(wide).save(folder / rec.file_name)
        paths = []
        for k in range(2):
            rel = f"negatives/{i}_{k}.png"
            Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(folder / rel)
            paths.append(rel)
        out.append(dataclasses.replace(rec, negative_imgpath=tuple(paths)))
    write_metadata(folder, out)
    return folder


@pytest.mark.parametrize("variant", ["ldm", "mpc"])
def test_cached_training_matches_uncached(variant, tiny_models, data, tmp_path) -> None:
    runs = {}
    for cached in (False, True):
        cfg = TrainConfig(
            **FAST, variant=variant, max_train_steps=3, cache_latents=cached, cache_text_embeddings=cached
        )
        runs[cached] = train(
            cfg,
            tiny_models["sd"],
            data,
            tmp_path / str(cached),
            backbone_dir=tiny_models["backbone"],
            show_progress=False,
            lazy_reads=cached,
        )
    plain, cached = (read_train_log(runs[k].log_path) for k in (False, True))
    assert any(r["loss_c"] is not None for r in plain) == (variant == "mpc")
    for ra, rb in zip(plain, cached, strict=True):
        for key, value in ra.items():
            assert (value is None) == (rb[key] is None), key
            if value is not None:
                assert rb[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (ra["step"], key)
    from safetensors.torch import load_file

    wa, wb = load_file(str(runs[False].lora_path)), load_file(str(runs[True].lora_path))
    assert wa.keys() == wb.keys()
    # Adam divides by |grad|, so float noise in near-zero gradients moves single weights by up to lr: compare norms
    diff = torch.cat([(wa[k] - wb[k]).flatten() for k in wa]).norm()
    size = torch.cat([wa[k].flatten() for k in wa]).norm()
    assert diff <= 1e-3 * size, (float(diff), float(size))


def test_cache_holds_both_flips_exactly_as_the_vae_encodes_them(tiny_models, data) -> None:
    from scoft.cache import build_input_cache
    from scoft.train import load_models

    models = load_models(tiny_models["sd"])
    dataset = CCUBDataset(data, resolution=64, random_flip=True)
    cache = build_input_cache(
        models, dataset, torch.device("cpu"), torch.float32, latents=True, texts=True, blip=True, progress=False
    )
    assert cache.latent_mean.shape == (4, 2, 4, 8, 8)
    image = dataset.load_image(dataset.records[2].file_name, flip=True)
    with torch.no_grad():
        dist = models.vae.encode(image[None]).latent_dist
    assert torch.equal(cache.latent_mean[2, 1], dist.mean[0]) and torch.equal(cache.latent_std[2, 1], dist.std[0])
    assert not torch.equal(cache.latent_mean[2, 0], cache.latent_mean[2, 1])
    random_crop = CCUBDataset(data, resolution=64, center_crop=False)
    kept = build_input_cache(
        models, random_crop, torch.device("cpu"), torch.float32, latents=True, texts=False, blip=False, progress=False
    )
    assert not kept.has_latents  # a random crop cannot be cached exactly


def test_only_chain_micro_batches_read_images_and_negatives(data: Path, monkeypatch) -> None:
    dataset = CCUBDataset(data, resolution=64, max_negatives=2)
    opened: list[str] = []
    original = CCUBDataset._load
    monkeypatch.setattr(CCUBDataset, "_load", lambda self, name, *a: opened.append(name) or original(self, name, *a))
    cfg = TrainConfig(**FAST, variant="mpc")
    steps = StepBatchSampler(4, 2, seed=0, start=0, stop=6)
    sampler = ReadingSampler(steps, reads_for(cfg, latents_cached=True))
    batches = [collate([EpochIndexed(dataset)[key] for key in keys]) for keys in sampler]
    chain = [m for m, b in enumerate(batches) if "pixel_values" in b]
    assert chain == [0, 3]
    assert all("negative_pixel_values" in batches[m] for m in chain)
    assert len(opened) == 2 * 2 * (1 + 2)  # two chain micro-batches of 2 images with 2 negatives each
    negatives = [n for n in opened if n.startswith("negatives/")]
    assert len(negatives) == 8
    # the uncached path reads images every micro-batch, negatives only on chain ones
    uncached = reads_for(cfg, latents_cached=False)
    assert [uncached(m) for m in range(4)] == [(True, True), (True, False), (True, False), (True, True)]
    assert reads_for(TrainConfig(**FAST, variant="ldm"), latents_cached=True)(0) == (False, False)
    # the random draws do not depend on what is read
    full = dataset.item(1)
    light = dataset.item(1, images=False)
    assert light["flipped"] == full["flipped"] and "pixel_values" not in light


def test_dataloader_workers_give_the_same_run(tiny_models, data, tmp_path) -> None:
    logs = []
    for workers in (0, 2):
        cfg = TrainConfig(**FAST, variant="mp", max_train_steps=2, dataloader_num_workers=workers)
        result = train(
            cfg,
            tiny_models["sd"],
            data,
            tmp_path / str(workers),
            backbone_dir=tiny_models["backbone"],
            show_progress=False,
        )
        logs.append(read_train_log(result.log_path))
    assert logs[0] == logs[1]
