"""Time and FLOPs per optimizer step of LDM-only and SCoFT+MPC on the real data path, before and after the caches.

    python bench/train_step.py                                # tiny random models, 64 px, CPU (1 thread)
    python bench/train_step.py --sd-size --resolution 256     # SD-1.5-shaped random models (slow on CPU)
    python bench/train_step.py --sd-size --device cuda --mixed-precision fp16 --resolution 512

Data: a synthetic CCUB folder on disk (``synthesize_ccub`` drawings saved as JPEG photos of ``--photo-size``, and
``--negatives`` PNG negatives per image at ``--negative-size``), read through ``CCUBDataset`` and the training
DataLoader exactly as ``scoft train`` reads it. "before" is the path without the savings (the VAE and text encoder
run on every micro-batch, every micro-batch reads its image and negatives); "after" is the default (cached
latents and text embeddings, images read only on chain micro-batches, negatives only there for MPC).

Time: the median (``--stat min``: the fastest) plain and chain micro-batch (data loading + losses + backward) and
optimizer update, amortised per optimizer step = accum x ((1 - 1/I) plain + (1/I) chain) + update
(I = contrastive_interval).
FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over each part of a micro-batch (UNet with LoRA forward +
backward, no-grad UNet passes, VAE encode/decode, text encoder, backbones) on models built on the meta device,
composed into the same amortised step; on the tiny models the composition is checked against a count of the real
``micro_step_losses`` + backward. Floor = FLOPs / the peak matmul FLOP/s measured here (same threads and dtype).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from flops import component_flops, count_real_micro_step, peak_matmul_flops, step_flops  # noqa: E402
from sd_models import sd_sized_models, vit_b16_backbones  # noqa: E402

from scoft.cache import build_input_cache  # noqa: E402
from scoft.config import TrainConfig  # noqa: E402
from scoft.data import CCUBDataset, collate  # noqa: E402
from scoft.features import build_backbones  # noqa: E402
from scoft.loading import EpochIndexed, ReadingSampler, StepBatchSampler, is_chain_step, mix_seed, reads_for  # noqa: E402
from scoft.train import StepContext, load_models, micro_step_losses, prepare_models, tokenize  # noqa: E402

__all__ = ["sd_sized_models", "vit_b16_backbones"]
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
STATS = {"median": statistics.median, "min": min}


def make_ccub_folder(root: Path, n_images: int, photo_size: tuple[int, int], negatives: int, negative_size: int):
    """A synthetic CCUB folder: JPEG photos (drawings scaled to ``photo_size``) with PNG negatives."""
    import dataclasses

    from PIL import Image

    from scoft.data import draw_synthetic, synthesize_ccub, write_metadata

    records = synthesize_ccub(root, culture="korea", n_images=n_images, resolution=64, seed=0)
    (root / "negatives").mkdir(exist_ok=True)
    out = []
    for i, rec in enumerate(records):
        photo = Image.open(root / rec.file_name).convert("RGB").resize(photo_size, Image.Resampling.BICUBIC)
        name = rec.file_name.rsplit(".", 1)[0] + ".jpg"
        photo.save(root / name, quality=92)
        paths = []
        for k in range(negatives):
            image, _, _ = draw_synthetic("nigeria", i * 10 + k, negative_size, seed=1)
            rel = f"negatives/{i}_{k}.png"
            image.save(root / rel)
            paths.append(rel)
        out.append(dataclasses.replace(rec, file_name=name, negative_imgpath=tuple(paths)))
    write_metadata(root, out)
    return root


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_config(args: argparse.Namespace, variant: str, cached: bool) -> TrainConfig:
    return TrainConfig(
        variant=variant,
        resolution=args.resolution,
        train_batch_size=args.batch,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_accumulation_steps=args.accum,
        contrastive_interval=args.interval,
        chain_length=args.chain_length,
        max_negatives=args.negatives,
        cache_latents=cached,
        cache_text_embeddings=cached,
        embedding_backend="local",  # tiny CLIP/DINO folders, or ViT-B/16 stand-ins of DreamSim's cost
    )


def build_models(args: argparse.Namespace, config: TrainConfig, device: torch.device, dtype: torch.dtype):
    torch.manual_seed(0)
    models = sd_sized_models(device) if args.sd_size else load_models(args.models / "sd")
    params = prepare_models(models, config, device, dtype)
    if args.sd_size:
        backbones = vit_b16_backbones(config, device, dtype)
    else:
        backbones = build_backbones(config, args.models / "backbone", device, dtype)
    return models, params, backbones


def time_variant(args: argparse.Namespace, variant: str, cached: bool, device: torch.device) -> dict[str, float]:
    from accelerate import Accelerator

    config = bench_config(args, variant, cached)
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=device.type == "cpu")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.mixed_precision, torch.float32)
    models, params, backbones = build_models(args, config, device, dtype)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.adam_weight_decay)
    unet, optimizer = accelerator.prepare(models.unet, optimizer)
    clock = CLOCKS[args.clock]
    dataset = CCUBDataset(
        args.data,
        resolution=config.resolution,
        tokenizer=None if cached else models.tokenizer,
        max_negatives=config.max_negatives if config.uses_negatives else 0,
        seed=config.seed,
    )
    t0 = clock()
    cache = build_input_cache(
        models, dataset, device, dtype, latents=cached, texts=cached, blip=config.uses_memorization, progress=False
    )
    _sync(device)
    cache_s = clock() - t0
    with torch.no_grad():
        null = models.text_encoder(tokenize(models.tokenizer, [""]).to(device))[0]
    ctx = StepContext(config, models, unet, accelerator.unwrap_model(unet), null, backbones, dtype, device, cache)
    accum = args.accum
    total_micro = (args.warmup + args.steps) * accum
    steps = StepBatchSampler(len(dataset), config.train_batch_size, config.seed, 0, total_micro)
    sampler = ReadingSampler(steps, reads_for(config, cache.has_latents, lazy=cached))
    loader = iter(torch.utils.data.DataLoader(EpochIndexed(dataset), batch_sampler=sampler, collate_fn=collate))
    plain: list[float] = []
    chain: list[float] = []
    update: list[float] = []
    for micro in range(total_micro):
        timed = micro >= args.warmup * accum
        is_chain = is_chain_step(config, micro)
        _sync(device)
        t0 = clock()
        batch = next(loader)
        gen = torch.Generator().manual_seed(mix_seed(config.seed, micro, 0))
        with accelerator.autocast():
            terms = micro_step_losses(ctx, batch, gen, is_chain)
        accelerator.backward(terms["loss"] / accum)
        _sync(device)
        t1 = clock()
        if timed:
            (chain if is_chain else plain).append(t1 - t0)
        if (micro + 1) % accum == 0:
            accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            if timed:
                update.append(clock() - t1)
    stat = STATS[args.stat]
    plain_med = stat(plain)
    chain_med = stat(chain) if chain else plain_med
    share = 1 / config.contrastive_interval if config.uses_chain else 0.0
    accelerator.free_memory()
    return {
        "plain_s": plain_med,
        "chain_s": chain_med if chain else float("nan"),
        "update_s": stat(update),
        "step_s": accum * ((1 - share) * plain_med + share * chain_med) + stat(update),
        "cache_s": cache_s,
    }


def flop_table(args: argparse.Namespace) -> dict[tuple[str, bool], dict[str, float]]:
    """FLOPs per plain / chain micro-batch and per optimizer step, counted on meta-device models."""
    meta = torch.device("meta")
    table = {}
    for variant in args.variants:
        config = bench_config(args, variant, True)
        if args.sd_size:
            models = sd_sized_models(meta)
            prepare_models(models, config, meta, torch.float32)
            backbones = vit_b16_backbones(config, meta, torch.float32)
        else:
            models, _, backbones = build_models(args, config, torch.device("cpu"), torch.float32)
        parts = component_flops(models, backbones, config, meta if args.sd_size else torch.device("cpu"))
        for cached in (False, True):
            table[(variant, cached)] = step_flops(parts, bench_config(args, variant, cached))
    return table


def composition_check(args: argparse.Namespace) -> str:
    """Composed FLOPs vs a count of the real micro-step (tiny models only: the real step runs)."""
    lines = []
    for variant in args.variants:
        for cached in (False, True):
            config = bench_config(args, variant, cached)
            models, _, backbones = build_models(args, config, torch.device("cpu"), torch.float32)
            parts = component_flops(models, backbones, config, torch.device("cpu"))
            composed = step_flops(parts, config)
            real = count_real_micro_step(models, backbones, config, args.data)
            for kind in ("plain", "chain"):
                if kind in real:
                    ok = "ok" if real[kind] == composed[kind] else "MISMATCH"
                    lines.append(
                        f"{variant}/{'after' if cached else 'before'} {kind}: real {real[kind]:.4g}, "
                        f"composed {composed[kind]:.4g} {ok}"
                    )
    return "; ".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, help="tiny models folder (built with scoft.tiny when absent)")
    p.add_argument("--sd-size", action="store_true", help="SD-1.5-sized random models instead of the tiny ones")
    p.add_argument("--device", default="cpu")
    p.add_argument("--resolution", type=int, default=None, help="default 64 (tiny) or 512 (--sd-size)")
    p.add_argument("--flop-resolution", type=int, default=512, help="resolution of the SD-1.5 FLOP table")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--images", type=int, default=8, help="synthetic CCUB images on disk")
    p.add_argument("--photo-size", type=int, nargs=2, default=(1024, 768), help="JPEG photo size (w h)")
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--negative-size", type=int, default=512)
    p.add_argument("--accum", type=int, default=TrainConfig().gradient_accumulation_steps)
    p.add_argument("--interval", type=int, default=TrainConfig().contrastive_interval)
    p.add_argument("--chain-length", type=int, default=TrainConfig().chain_length)
    p.add_argument("--clock", choices=sorted(CLOCKS), help="default: process (CPU time, robust on a shared CPU)")
    p.add_argument(
        "--stat", choices=sorted(STATS), default="median", help="min: robust to a busy shared CPU (noise only adds)"
    )
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps per variant and mode")
    p.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps per variant and mode")
    p.add_argument("--variants", nargs="+", default=["ldm", "mpc"], choices=["ldm", "m", "mp", "mpc"])
    p.add_argument("--paths", nargs="+", default=["before", "after"], choices=["before", "after"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-timing", action="store_true", help="FLOP table only")
    args = p.parse_args(argv)
    from scoft.quiet import quiet_third_party

    quiet_third_party()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.clock = args.clock or ("wall" if device.type == "cuda" else "process")
    args.resolution = args.resolution or (512 if args.sd_size else 64)
    work = Path(tempfile.mkdtemp(prefix="scoft-bench-"))
    if not args.sd_size:
        from scoft.tiny import build_tiny

        args.models = args.models or work / "models"
        build_tiny(args.models, parts=("sd", "backbone"))
    args.data = make_ccub_folder(work / "data", args.images, tuple(args.photo_size), args.negatives, args.negative_size)

    label = "SD-1.5-shaped" if args.sd_size else "tiny"
    print(
        f"# {label} models, {args.resolution} px, batch {args.batch}, {args.negatives} negatives, device {device}, "
        f"mixed precision {args.mixed_precision}, accumulation {args.accum}, chain of {args.chain_length} every "
        f"{args.interval} micro-batches, {args.images} JPEG photos {args.photo_size[0]}x{args.photo_size[1]} on disk, "
        f"{args.steps} timed steps, {args.clock} clock, {args.stat} of the micro-batches, {args.threads} thread(s)"
    )
    peak = peak_matmul_flops(device, torch.float16 if args.mixed_precision == "fp16" else torch.float32)
    print(f"peak matmul: {peak / 1e9:.1f} GFLOP/s")
    flops = flop_table(args)
    if not args.sd_size:
        print(f"FLOP composition check: {composition_check(args)}")
    if not args.no_timing:
        header = f"{'variant':<8}{'path':<8}{'plain s':>10}{'chain s':>10}{'update s':>10}{'step s':>10}"
        header += f"{'GFLOP/step':>12}{'floor s':>10}{'time/floor':>11}{'cache s':>9}"
        print(header)
        times = {}
        paths = [path == "after" for path in args.paths]
        for variant in args.variants:
            for cached in paths:
                r = times[(variant, cached)] = time_variant(args, variant, cached, device)
                f = flops[(variant, cached)]["step"]
                print(
                    f"{variant:<8}{'after' if cached else 'before':<8}{r['plain_s']:>10.4f}{r['chain_s']:>10.4f}"
                    f"{r['update_s']:>10.4f}{r['step_s']:>10.4f}{f / 1e9:>12.3f}{f / peak:>10.4f}"
                    f"{r['step_s'] / (f / peak):>11.2f}{r['cache_s']:>9.3f}",
                    flush=True,
                )
        for variant in args.variants if len(paths) == 2 else ():
            speedup = times[(variant, False)]["step_s"] / times[(variant, True)]["step_s"]
            print(f"{variant}: after is {speedup:.2f}x faster per optimizer step than before")
    if args.sd_size or args.flop_resolution:
        args_sd = argparse.Namespace(**{**vars(args), "sd_size": True, "resolution": args.flop_resolution})
        table = flops if args.sd_size and args.resolution == args.flop_resolution else flop_table(args_sd)
        print(f"# SD-1.5-shaped FLOPs per optimizer step at {args.flop_resolution} px (meta device), this setup")
        print(f"{'variant':<8}{'path':<8}{'plain GFLOP':>13}{'chain GFLOP':>13}{'step GFLOP':>12}{'floor s here':>14}")
        for (variant, cached), f in table.items():
            chain = f.get("chain", float("nan"))
            print(
                f"{variant:<8}{'after' if cached else 'before':<8}{f['plain'] / 1e9:>13.1f}{chain / 1e9:>13.1f}"
                f"{f['step'] / 1e9:>12.1f}{f['step'] / peak:>14.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
