"""Exact savings of a training run: the frozen VAE's posterior and the frozen text encoder's embeddings, computed once.

Under a centre crop an image reaches the VAE in one of two states (flipped or not), so the posterior mean and
standard deviation of both are cached, and each micro-batch draws the VAE sample from them with the same generator
draw as the uncached path: the latents are the same up to floating-point batching differences. The text encoder is
frozen and sees the same two captions of a record every time, so its outputs are cached per record. With a random
crop the latents cannot be cached (every crop differs) and the VAE runs per micro-batch as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class InputCache:
    """``latent_mean`` / ``latent_std``: N x 2 (not flipped, flipped) x C x h x w; ``text`` / ``blip``: N x L x D."""

    latent_mean: Tensor | None = None
    latent_std: Tensor | None = None
    text: Tensor | None = None
    blip: Tensor | None = None

    @property
    def has_latents(self) -> bool:
        return self.latent_mean is not None

    @property
    def has_text(self) -> bool:
        return self.text is not None


def tokenize(tokenizer: Any, texts: list[str]) -> Tensor:
    return tokenizer(
        list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


@torch.no_grad()
def encode_posteriors(vae: nn.Module, dataset: Any, device: torch.device, dtype: torch.dtype, progress: bool) -> tuple:
    """Posterior mean and std of every dataset image, unflipped and flipped (one image per VAE call, as batch 1)."""
    from tqdm.auto import tqdm

    means, stds = [], []
    for record in tqdm(dataset.records, desc="cache latents", unit="img", disable=not progress, leave=False):
        pair_mean, pair_std = [], []
        for flip in (False, True):
            pixels = dataset.load_image(record.file_name, flip)[None].to(device, dtype)
            dist = vae.encode(pixels).latent_dist
            pair_mean.append(dist.mean[0])
            pair_std.append(dist.std[0])
        means.append(torch.stack(pair_mean))
        stds.append(torch.stack(pair_std))
    return torch.stack(means), torch.stack(stds)


@torch.no_grad()
def encode_texts(text_encoder: nn.Module, tokenizer: Any, texts: list[str], device: torch.device, chunk: int = 16):
    out = [text_encoder(tokenize(tokenizer, texts[i : i + chunk]).to(device))[0] for i in range(0, len(texts), chunk)]
    return torch.cat(out)


def build_input_cache(
    models: Any,
    dataset: Any,
    device: torch.device,
    weight_dtype: torch.dtype,
    *,
    latents: bool,
    texts: bool,
    blip: bool,
    progress: bool = True,
) -> InputCache:
    """What the run can cache: latents only when ``dataset`` centre-crops, texts (and blip captions) always."""
    cache = InputCache()
    if latents and dataset.center_crop:
        cache.latent_mean, cache.latent_std = encode_posteriors(models.vae, dataset, device, weight_dtype, progress)
    if texts:
        cache.text = encode_texts(models.text_encoder, models.tokenizer, [r.text for r in dataset.records], device)
        if blip:
            blip_texts = [r.blip_text for r in dataset.records]
            cache.blip = encode_texts(models.text_encoder, models.tokenizer, blip_texts, device)
    return cache


def batch_inputs(
    models: Any,
    cache: InputCache | None,
    batch: dict[str, Any],
    generator: torch.Generator,
    device: torch.device,
    weight_dtype: torch.dtype,
    memorization: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(latents z0, CCUB-caption embeddings, blip-caption embeddings or ``None``) of a micro-batch, from the cache
    where it holds them, else from the frozen VAE / text encoder. The VAE sample takes one generator draw either way."""
    with torch.no_grad():
        if cache is not None and cache.has_latents:
            rows = batch["index"].to(device)
            flips = torch.tensor([bool(f) for f in batch["flipped"]], dtype=torch.long, device=device)
            mean, std = cache.latent_mean[rows, flips], cache.latent_std[rows, flips]
        else:
            dist = models.vae.encode(batch["pixel_values"].to(device, weight_dtype)).latent_dist
            mean, std = dist.mean, dist.std
        sample_noise = torch.randn(mean.shape, generator=generator).to(device, mean.dtype)
        latents = (mean + std * sample_noise).float() * models.vae.config.scaling_factor
        if cache is not None and cache.has_text:
            rows = batch["index"].to(device)
            enc = cache.text[rows]
            enc_blip = cache.blip[rows] if memorization else None
        else:
            enc = models.text_encoder(batch["input_ids"].to(device))[0]
            enc_blip = models.text_encoder(batch["blip_input_ids"].to(device))[0] if memorization else None
    return latents, enc, enc_blip
