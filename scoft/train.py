"""``python -m scoft train``: LoRA fine-tuning of an SD-1.x UNet with the SCoFT losses, on Accelerate.

Randomness is a function of (seed, micro-batch index, process): the data order of each epoch, the VAE sample, the
noise, the timestep and the chain's recorded step. A run resumed from ``checkpoint-{step}/`` therefore reproduces the
losses of the uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from scoft.cache import InputCache, batch_inputs, build_input_cache
from scoft.checkpoint import register_lora_hooks
from scoft.config import TrainConfig, dump_config
from scoft.denoise import ddpm_clip_range, decode_latents, denoise_chain
from scoft.features import Backbones, build_backbones
from scoft.loading import EpochIndexed, ReadingSampler, StepBatchSampler, is_chain_step, reads_for
from scoft.lora import LORA_WEIGHT_NAME, add_lora, save_lora
from scoft.losses import (
    loss_contrastive,
    loss_ldm,
    loss_memorization,
    loss_perceptual,
    sample_timesteps,
    total_loss,
)
from scoft.schedule import build_lr_scheduler
from scoft.seeds import mix_seed

LOG_COLUMNS = ("step", "loss", "loss_ldm", "loss_m", "loss_p", "loss_c", "lr")
TERMS = ("loss", "ldm", "m", "p", "c")
STEP_FILE = "step.json"


@dataclass
class Models:
    tokenizer: Any
    text_encoder: nn.Module
    vae: nn.Module
    unet: nn.Module
    noise_scheduler: Any


def load_models(base: str | Path, variant: str | None = None) -> Models:
    """The SD-1.x components from a diffusers pipeline folder (CPU, fp32); ``variant`` picks e.g. the fp16 files."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = Path(base)
    if not (base / "model_index.json").is_file():
        raise FileNotFoundError(f"{base} is not a diffusers pipeline folder (no model_index.json)")
    weights = {"variant": variant, "dtype": torch.float32} if variant else {}
    return Models(
        tokenizer=CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
        text_encoder=CLIPTextModel.from_pretrained(base, subfolder="text_encoder", **weights),
        vae=AutoencoderKL.from_pretrained(base, subfolder="vae", **weights),
        unet=UNet2DConditionModel.from_pretrained(base, subfolder="unet", **weights),
        noise_scheduler=DDPMScheduler.from_pretrained(base, subfolder="scheduler"),
    )


def prepare_models(models: Models, config: TrainConfig, device: torch.device, weight_dtype: torch.dtype) -> list:
    """Freeze and place the frozen parts in ``weight_dtype``, add the LoRA (fp32) and return its parameters."""
    for module in (models.text_encoder, models.vae, models.unet):
        module.requires_grad_(False)
        module.to(device) if weight_dtype == torch.float32 else module.to(device, dtype=weight_dtype)
    models.text_encoder.eval()
    models.vae.eval()
    params = add_lora(models.unet, config.lora_rank, config.lora_alpha, config.lora_target_modules)
    if config.gradient_checkpointing:
        models.unet.enable_gradient_checkpointing()
        models.vae.enable_gradient_checkpointing()
    return params


def tokenize(tokenizer: Any, texts: Sequence[str]) -> Tensor:
    return tokenizer(
        list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def _negative_mask(negatives: Tensor) -> Tensor:
    """B x K: True where a negative image is present (an all-zero slot is padding)."""
    return negatives.flatten(2).abs().amax(dim=-1) > 0


def _select_rows(features: Any, rows: Tensor) -> Any:
    """Rows of a backbone's features (a tensor or a list of per-layer tensors)."""
    if isinstance(features, Tensor):
        return features[rows]
    return [f[rows] for f in features]


@dataclass
class StepContext:
    """What one micro-batch needs besides the batch itself."""

    config: TrainConfig
    models: Models
    unet: nn.Module
    raw_unet: nn.Module
    null_embedding: Tensor
    backbones: Backbones
    weight_dtype: torch.dtype
    device: torch.device
    cache: InputCache | None = None


def micro_step_losses(ctx: StepContext, batch: dict[str, Tensor], generator: torch.Generator, chain: bool) -> dict:
    """Loss terms of one micro-batch (``ldm``, ``m``, ``p``, ``c``; absent ones are ``None``) and their total."""
    cfg, m = ctx.config, ctx.models
    dev, wd = ctx.device, ctx.weight_dtype
    sched = m.noise_scheduler
    latents, enc_ccub, enc_blip = batch_inputs(m, ctx.cache, batch, generator, dev, wd, cfg.uses_memorization)
    bsz = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator).to(dev)
    timesteps = sample_timesteps(bsz, sched.config.num_train_timesteps, generator, dev)
    noisy = sched.add_noise(latents, noise, timesteps)
    if sched.config.prediction_type == "epsilon":
        target = noise
    elif sched.config.prediction_type == "v_prediction":
        target = sched.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unsupported prediction type {sched.config.prediction_type!r}")
    null = ctx.null_embedding.expand(bsz, -1, -1)

    pred = ctx.unet(noisy, timesteps, encoder_hidden_states=enc_ccub).sample
    terms: dict[str, Tensor | None] = {"ldm": loss_ldm(pred, target), "m": None, "p": None, "c": None}
    pred_null = None
    if cfg.uses_memorization:
        with torch.no_grad():
            if chain:
                both = ctx.raw_unet(
                    torch.cat([noisy, noisy]), torch.cat([timesteps, timesteps]), torch.cat([enc_blip, null])
                ).sample
                pred_blip, pred_null = both.chunk(2)
            else:
                pred_blip = ctx.raw_unet(noisy, timesteps, encoder_hidden_states=enc_blip).sample
        terms["m"] = loss_memorization(pred, pred_blip)
    if chain:
        terms.update(chain_losses(ctx, batch, noisy, timesteps, enc_ccub, null, pred, pred_null, generator))
    return {**terms, "loss": total_loss(terms, cfg.loss_weights())}


def chain_losses(
    ctx: StepContext,
    batch: dict[str, Tensor],
    noisy: Tensor,
    timesteps: Tensor,
    enc_ccub: Tensor,
    null: Tensor,
    pred: Tensor,
    pred_null: Tensor | None,
    generator: torch.Generator,
) -> dict[str, Tensor]:
    """Denoise to x_hat and compute L_P and/or L_C against the positive (and the negatives)."""
    cfg, m = ctx.config, ctx.models
    first = (pred, pred_null) if pred_null is not None else None
    # the ddpm noise of chain step k comes from (this micro-batch's generator, k): reproducible, also on resume
    noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    sched_config = m.noise_scheduler.config
    z0 = denoise_chain(
        ctx.raw_unet,
        m.noise_scheduler.alphas_cumprod,
        noisy,
        timesteps,
        enc_ccub,
        null,
        chain_length=cfg.chain_length,
        guidance_scale=cfg.guidance_scale,
        grad_step=cfg.grad_step,
        prediction_type=m.noise_scheduler.config.prediction_type,
        first_preds=first,
        half_precision=cfg.chain_half_precision,
        generator=generator,
        sampler=cfg.chain_sampler,
        noise_seed=noise_seed,
        clip_sample_range=ddpm_clip_range(sched_config) if cfg.chain_sampler == "ddpm" else None,
    )
    x_hat = decode_latents(m.vae, z0)
    positive = batch["pixel_values"].to(ctx.device, ctx.weight_dtype)
    cache: dict[str, tuple[Any, Any]] = {}

    def feats(name: str) -> tuple[Any, Any]:
        if name not in cache:
            backbone = ctx.backbones.get(name)
            with torch.no_grad():
                f_pos = backbone.features(positive)
            cache[name] = (backbone.features(x_hat), f_pos)
        return cache[name]

    out: dict[str, Tensor] = {}
    if cfg.uses_perceptual:
        f_hat, f_pos = feats(cfg.perceptual_distance)
        out["p"] = loss_perceptual(ctx.backbones.get(cfg.perceptual_distance).compare(f_hat, f_pos))
    if cfg.uses_contrastive:
        name = cfg.contrastive_distance
        backbone = ctx.backbones.get(name)
        f_hat, f_pos = feats(name)
        d_pos = backbone.compare(f_hat, f_pos)
        if not cfg.uses_negatives:  # mp: the pull toward the positive only (the authors' --onlypositive)
            out["c"] = loss_perceptual(d_pos)
            return out
        negatives = batch["negative_pixel_values"].to(ctx.device, ctx.weight_dtype)
        mask = batch.get("negative_mask")
        mask = _negative_mask(negatives) if mask is None else mask.to(ctx.device).bool()
        d_neg = negative_distances(backbone, f_hat, negatives, mask)
        out["c"] = loss_contrastive(d_pos, d_neg, mask, form=cfg.contrastive_form, margin=cfg.margin)
    return out


def negative_distances(backbone: Any, f_hat: Any, negatives: Tensor, mask: Tensor) -> Tensor:
    """B x K distances between each sample's features and its negatives (B x K x 3 x H x W); padding slots
    (``mask`` False) stay 0 and never go through the backbone."""
    bsz, k = negatives.shape[:2]
    d_neg = torch.zeros(bsz, k, device=negatives.device)
    if mask.any():
        rows = mask.nonzero(as_tuple=True)[0]
        with torch.no_grad():
            f_neg = backbone.features(negatives[mask])
        d_neg = d_neg.index_put((mask,), backbone.compare(_select_rows(f_hat, rows), f_neg).float())
    return d_neg


def resolve_mixed_precision(requested: str) -> str:
    if requested != "no" and not torch.cuda.is_available():
        print(f"mixed_precision = {requested!r} needs CUDA; training in fp32 on CPU", file=sys.stderr)
        return "no"
    return requested


def latest_checkpoint(out: Path) -> Path | None:
    found = [p for p in out.glob("checkpoint-*") if p.is_dir() and (p / STEP_FILE).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def prune_checkpoints(out: Path, keep: int) -> None:
    found = sorted(
        (p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[1].isdigit()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    for old in found[: max(0, len(found) - keep)]:
        shutil.rmtree(old)


class TrainLog:
    """``train_log.csv``: one row per optimizer step; empty cells for terms not computed during the step."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        rows: list[list[str]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as fh:
                rows = [r for r in list(csv.reader(fh))[1:] if r and int(r[0]) <= resume_step]
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(LOG_COLUMNS)
            writer.writerows(rows)

    def write(self, step: int, values: dict[str, float | None], lr: float) -> None:
        cells = [step] + ["" if values.get(t) is None else f"{values[t]:.8g}" for t in TERMS] + [f"{lr:.8g}"]
        with self.path.open("a", newline="") as fh:
            csv.writer(fh).writerow(cells)


def read_train_log(path: str | Path) -> list[dict[str, float | None]]:
    """Rows of ``train_log.csv`` as dicts (empty cells as ``None``)."""
    with Path(path).open(newline="") as fh:
        return [{k: (float(v) if v != "" else None) for k, v in row.items()} for row in csv.DictReader(fh)]


@dataclass
class TrainResult:
    out: Path
    lora_path: Path
    log_path: Path
    steps: int
    max_steps: int

    @property
    def finished(self) -> bool:
        return self.steps >= self.max_steps


def _check_data(config: TrainConfig, data_dir: Path) -> list:
    """The record and image checks of a run (``scoft.checks.check_data``) for ``config``; returns the records."""
    from scoft.checks import check_data

    return check_data(
        data_dir,
        needs_blip=config.uses_memorization,
        needs_negatives=config.uses_negatives,
        negatives=config.max_negatives,
        progress=False,
        variant=config.variant,
    )


def train(
    config: TrainConfig,
    base: str | Path,
    data_dir: str | Path,
    out: str | Path,
    *,
    backbone_dir: str | Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    show_progress: bool = True,
    overwrite: bool = False,
    weights_variant: str | None = None,
    caption_with: str | Path | None = None,
    checked: bool = False,
    lazy_reads: bool = True,
) -> TrainResult:
    """Train one LoRA variant and write ``OUT/pytorch_lora_weights.safetensors``, ``config.toml``, ``train_log.csv``
    and ``checkpoint-{step}/`` folders.

    ``resume`` continues from the latest checkpoint; ``stop_after`` ends this invocation after that optimizer step
    (with a checkpoint, for time-limited job slots), leaving the LoRA file to the run that reaches the last step.
    An output folder that already holds files needs ``resume`` or ``overwrite``. ``checked`` skips the checks of
    :func:`scoft.checks.preflight` (the CLI has run them); ``lazy_reads=False`` reads every image and negative on
    every micro-batch (the path before the caches, for benchmarks).
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    from scoft import __version__
    from scoft.checks import preflight
    from scoft.data import CCUBDataset, collate
    from scoft.watch import RunWatcher, tracker_config, tracker_names

    out, data_dir = Path(out), Path(data_dir)
    if not checked:
        preflight(
            config,
            base,
            data_dir,
            out,
            backbone_dir=backbone_dir,
            resume=resume,
            overwrite=overwrite,
            weights_variant=weights_variant,
            caption_with=caption_with,
            progress=show_progress,
        )
    mixed = resolve_mixed_precision(config.mixed_precision)
    accelerator = Accelerator(
        mixed_precision=mixed,
        log_with=tracker_names(config.report_to) or None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    device = accelerator.device
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed, torch.float32)

    models = load_models(base, weights_variant)
    set_seed(config.seed)  # the LoRA initialisation draws from the global generators
    params = prepare_models(models, config, device, weight_dtype)
    backbones = build_backbones(config, backbone_dir, device, weight_dtype)

    dataset = CCUBDataset(
        data_dir,
        resolution=config.resolution,
        center_crop=config.center_crop,
        random_flip=config.random_flip,
        joint_flip=config.joint_flip,
        tokenizer=None if config.cache_text_embeddings else models.tokenizer,
        max_negatives=config.max_negatives if config.uses_negatives else 0,
        seed=config.seed,
    )
    cache = build_input_cache(
        models,
        dataset,
        device,
        weight_dtype,
        latents=config.cache_latents,
        texts=config.cache_text_embeddings,
        blip=config.uses_memorization,
        progress=show_progress and accelerator.is_main_process,
    )
    accum = config.gradient_accumulation_steps
    per_epoch = len(dataset) // (config.train_batch_size * accelerator.num_processes)
    max_steps = config.max_train_steps or config.num_train_epochs * max(1, math.ceil(per_epoch / accum))

    optimizer = torch.optim.AdamW(
        params,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.adam_weight_decay,
        eps=config.adam_epsilon,
    )
    lr_scheduler = build_lr_scheduler(optimizer, config.lr_schedule, max_steps, config.lr_warmup_steps, accum)
    unet, optimizer = accelerator.prepare(models.unet, optimizer)
    raw_unet = accelerator.unwrap_model(unet)
    accelerator.register_for_checkpointing(lr_scheduler)
    register_lora_hooks(accelerator, raw_unet)

    out.mkdir(parents=True, exist_ok=True)
    start_step = 0
    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None and accelerator.is_main_process:
        print(f"no checkpoint in {out}; starting from step 0", file=sys.stderr)
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        start_step = int(json.loads((checkpoint / STEP_FILE).read_text())["step"])
    if accelerator.is_main_process:
        run = {"base": str(base), "data": str(data_dir), "backbone": str(backbone_dir) if backbone_dir else None}
        run |= {"max_train_steps": max_steps, "num_processes": accelerator.num_processes}
        run["package_version"] = __version__
        (out / "config.toml").write_text(dump_config(config, run))
    log = TrainLog(out / "train_log.csv", start_step if checkpoint else None) if accelerator.is_main_process else None

    with torch.no_grad():
        null_ids = tokenize(models.tokenizer, [""]).to(device)
        null_embedding = models.text_encoder(null_ids)[0]
    steps = StepBatchSampler(
        len(dataset),
        config.train_batch_size,
        config.seed,
        start_step * accum,
        max_steps * accum,
        accelerator.num_processes,
        accelerator.process_index,
    )
    sampler = ReadingSampler(steps, reads_for(config, cache.has_latents, lazy=lazy_reads))
    loader = DataLoader(
        EpochIndexed(dataset), batch_sampler=sampler, collate_fn=collate, num_workers=config.dataloader_num_workers
    )
    ctx = StepContext(config, models, unet, raw_unet, null_embedding, backbones, weight_dtype, device, cache)
    end = max_steps if stop_after is None else min(max_steps, stop_after)
    loop_args = (optimizer, lr_scheduler, params, log, out, start_step, end, show_progress)
    accelerator.init_trackers("scoft", config=tracker_config(config))
    watcher = RunWatcher(accelerator, models, raw_unet, config, dataset.records, out)
    step = train_loop(ctx, accelerator, loader, *loop_args, on_step=watcher)

    accelerator.wait_for_everyone()
    lora_path = out / LORA_WEIGHT_NAME
    if accelerator.is_main_process and step >= max_steps:
        lora_path = save_lora(raw_unet, out)
    accelerator.end_training()
    return TrainResult(out, lora_path, out / "train_log.csv", step, max_steps)


def train_loop(
    ctx: StepContext,
    accelerator: Any,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    params: list[nn.Parameter],
    log: TrainLog | None,
    out: Path,
    start_step: int,
    end_step: int,
    show_progress: bool = True,
    on_step: Callable[[int, dict[str, float | None], float], None] | None = None,
) -> int:
    """Micro-batches from ``loader`` (deterministic order), gradient accumulation, clipping, logging, checkpoints;
    returns the optimizer step reached (``end_step`` unless the loader runs out)."""
    from tqdm.auto import tqdm

    cfg = ctx.config
    accum = cfg.gradient_accumulation_steps
    seed_rank = accelerator.process_index
    bar = tqdm(
        total=end_step,
        initial=start_step,
        desc=f"train {cfg.variant}",
        disable=not (show_progress and accelerator.is_main_process),
    )
    sums = torch.zeros(2 * len(TERMS), device=ctx.device)
    step = start_step
    micro = start_step * accum
    ctx.unet.train()
    for batch in loader:
        sync = (micro + 1) % accum == 0
        chain = is_chain_step(cfg, micro)
        generator = torch.Generator().manual_seed(mix_seed(cfg.seed, micro, seed_rank))
        no_sync = accelerator.no_sync(ctx.unet) if not sync and accelerator.num_processes > 1 else nullcontext()
        with no_sync:
            with accelerator.autocast():
                terms = micro_step_losses(ctx, batch, generator, chain)
            accelerator.backward(terms["loss"] / accum)
        for i, name in enumerate(TERMS):
            if terms[name] is not None:
                sums[2 * i] += terms[name].detach().float()
                sums[2 * i + 1] += 1
        micro += 1
        if not sync:
            continue
        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        lr = lr_scheduler.get_last_lr()[0]
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        totals = accelerator.reduce(sums, reduction="sum").tolist()
        values = {n: (totals[2 * i] / totals[2 * i + 1] if totals[2 * i + 1] else None) for i, n in enumerate(TERMS)}
        sums.zero_()
        if log is not None:
            log.write(step, values, lr)
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in values.items() if v is not None})
        if step % cfg.checkpointing_steps == 0 or step == end_step:
            save_checkpoint(accelerator, out, step, cfg.checkpoints_total_limit)
        if on_step is not None:
            on_step(step, values, lr)
        if step >= end_step:
            break
    bar.close()
    return step


def save_checkpoint(accelerator: Any, out: Path, step: int, keep: int) -> Path:
    path = out / f"checkpoint-{step}"
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        (path / STEP_FILE).write_text(json.dumps({"step": step}))
        prune_checkpoints(out, keep)
    accelerator.wait_for_everyone()
    return path


from scoft.train_cli import build_parser, main  # noqa: E402  (the CLI checks paths before importing this module)

__all__ = ["build_parser", "main", "train"]
