"""FLOPs of a SCoFT micro-batch, counted part by part with ``torch.utils.flop_counter`` (works on the meta device).

A micro-batch is composed of these parts (batch b, chain of L steps with gradient at the first, K negatives):
plain = UNet fwd+bwd (LoRA) [+ no-grad UNet at b for L_M] [+ VAE encode + text encoder when not cached];
chain = UNet fwd+bwd + L no-grad UNet passes at 2b (memorization+null, then L-1 guided steps) + VAE decode fwd+bwd
+ per backbone (features of x_hat fwd+bwd, of the positive fwd) + contrastive backbone on the K negatives
[+ VAE encode + 2 text encoder passes when not cached]. ``count_real_micro_step`` counts the real training code
for comparison (tiny models).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def count(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def component_flops(models: Any, backbones: Any, config: Any, device: torch.device) -> dict[str, int]:
    b, res = config.train_batch_size, config.resolution
    unet, vae, text = models.unet, models.vae, models.text_encoder
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    z = torch.randn(b, unet.config.in_channels, res // down, res // down, device=device)
    t = torch.full((b,), 500, dtype=torch.long, device=device)
    enc = torch.randn(b, models.tokenizer.model_max_length, text.config.hidden_size, device=device)
    ids = torch.zeros(b, models.tokenizer.model_max_length, dtype=torch.long, device=device)
    img = torch.randn(b, 3, res, res, device=device)

    def unet_train() -> None:
        unet(z, t, encoder_hidden_states=enc).sample.float().pow(2).mean().backward()

    def vae_decode() -> None:
        zz = z.clone().requires_grad_(True)
        vae.decode(zz).sample.float().mean().backward()

    parts = {"unet_train": count(unet_train), "vae_decode_fb": count(vae_decode)}
    unet.zero_grad(set_to_none=True)
    with torch.no_grad():
        parts["unet_fwd_b"] = count(lambda: unet(z, t, encoder_hidden_states=enc))
        z2, t2, e2 = torch.cat([z, z]), torch.cat([t, t]), torch.cat([enc, enc])
        parts["unet_fwd_2b"] = count(lambda: unet(z2, t2, encoder_hidden_states=e2))
        parts["vae_encode"] = count(lambda: vae.encode(img).latent_dist.mean)
        parts["text"] = count(lambda: text(ids)[0])
    for name in sorted(config.distances_needed()):
        backbone = backbones.get(name)

        def features_fb(backbone: Any = backbone) -> None:
            x = img.clone().requires_grad_(True)
            with torch.no_grad():
                f_pos = backbone.features(img)
            backbone.compare(backbone.features(x), f_pos).float().sum().backward()

        parts[f"{name}_fb"] = count(features_fb)
        negatives = img.repeat(config.max_negatives, 1, 1, 1)
        with torch.no_grad():
            parts[f"{name}_negatives"] = count(lambda backbone=backbone, n=negatives: backbone.features(n))
    return parts


def step_flops(parts: dict[str, int], config: Any) -> dict[str, float]:
    """FLOPs of a plain and a chain micro-batch and of the amortised optimizer step (``plain``, ``chain``, ``step``)."""
    memorization = config.uses_memorization
    inputs = 0 if config.cache_latents and config.center_crop else parts["vae_encode"]
    inputs += 0 if config.cache_text_embeddings else parts["text"] * (2 if memorization else 1)
    out: dict[str, float] = {"plain": parts["unet_train"] + (parts["unet_fwd_b"] if memorization else 0) + inputs}
    share = 0.0
    if config.uses_chain:
        chain = parts["unet_train"] + config.chain_length * parts["unet_fwd_2b"] + parts["vae_decode_fb"] + inputs
        chain += sum(parts[f"{name}_fb"] for name in config.distances_needed())
        if config.uses_negatives:
            chain += parts[f"{config.contrastive_distance}_negatives"]
        out["chain"] = chain
        share = 1 / config.contrastive_interval
    out["step"] = config.gradient_accumulation_steps * ((1 - share) * out["plain"] + share * out.get("chain", 0.0))
    return out


def count_real_micro_step(models: Any, backbones: Any, config: Any, data: Path) -> dict[str, int]:
    """FLOPs of ``scoft.train.micro_step_losses`` + backward on a real batch (plain, and chain when the variant has
    one), through the training data path with the config's caches."""
    from scoft.cache import build_input_cache
    from scoft.data import CCUBDataset, collate
    from scoft.loading import EpochIndexed, ReadingSampler, StepBatchSampler, reads_for
    from scoft.train import StepContext, micro_step_losses, tokenize

    cpu = torch.device("cpu")
    dataset = CCUBDataset(
        data,
        resolution=config.resolution,
        tokenizer=None if config.cache_text_embeddings else models.tokenizer,
        max_negatives=config.max_negatives if config.uses_negatives else 0,
    )
    cache = build_input_cache(
        models,
        dataset,
        cpu,
        torch.float32,
        latents=config.cache_latents,
        texts=config.cache_text_embeddings,
        blip=config.uses_memorization,
        progress=False,
    )
    with torch.no_grad():
        null = models.text_encoder(tokenize(models.tokenizer, [""]))[0]
    ctx = StepContext(config, models, models.unet, models.unet, null, backbones, torch.float32, cpu, cache)
    sampler = ReadingSampler(
        StepBatchSampler(len(dataset), config.train_batch_size, 0, 0, 2),
        reads_for(config, cache.has_latents, lazy=config.cache_latents),
    )
    batches = [collate([EpochIndexed(dataset)[key] for key in keys]) for keys in sampler]
    out = {}
    for micro, kind in ((1, "plain"), (0, "chain")):
        if kind == "chain" and not config.uses_chain:
            continue

        def step(micro: int = micro, chain: bool = kind == "chain") -> None:
            gen = torch.Generator().manual_seed(micro)
            micro_step_losses(ctx, batches[micro], gen, chain)["loss"].backward()

        out[kind] = count(step)
        models.unet.zero_grad(set_to_none=True)
    return out


def peak_matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 1024, reps: int = 7) -> float:
    """Best FLOP/s of an n x n matmul over ``reps`` timed rounds (CPU time on CPU, wall time on CUDA)."""
    if dtype == torch.float16 and device.type == "cpu":
        dtype = torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    inner = 20 if device.type == "cuda" else 4
    best = math.inf
    for rep in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = clock()
        for _ in range(inner):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if rep:  # the first round warms up
            best = min(best, (clock() - t0) / inner)
    return 2 * n**3 / best
