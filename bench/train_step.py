"""Time per optimizer step of each SCoFT variant, and the amortised SCoFT+MPC / LDM-only cost ratio.

    python bench/train_step.py                      # tiny random models, 64 px, CPU (1 thread)
    python bench/train_step.py --sd-size --device cuda --resolution 512 --mixed-precision fp16 \\
        --gradient-checkpointing                    # SD-1.5-sized random UNet/VAE/text encoder and ViT-B backbones

Each variant runs the training micro-step of ``scoft.train`` (same losses, same chain, same LoRA) on a synthetic
batch with ``gradient_accumulation_steps`` micro-batches per optimizer step and the chain on one micro-batch in
``contrastive_interval``. Reported: the median of plain and chain micro-batches, the median optimizer step as run,
and the amortised optimizer step = accum x ((1 - 1/I) plain + (1/I) chain) + optimizer update.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scoft.config import TrainConfig
from scoft.features import (
    Backbones,
    EmbeddingDistance,
    ImageEncoder,
    VGG16Features,
    VGGDistance,
    build_backbones,
    freeze,
)
from scoft.train import Models, StepContext, load_models, micro_step_losses, mix_seed, prepare_models, tokenize

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sd_sized_models(device: torch.device) -> Models:
    """Random weights in SD-1.5 shapes: UNet (320..1280, cross-attention 768), VAE (128..512), CLIP-L text."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from scoft.tiny import write_clip_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer_files(Path(tmp)), model_max_length=77)
    with device:
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    with device:  # initialise the random weights where they will run
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False
    )
    return Models(tokenizer, text_encoder, vae, unet, scheduler)


def vit_b16_backbones(config: TrainConfig, device: torch.device, dtype: torch.dtype) -> Backbones:
    """Random VGG-16 (torchvision widths) and CLIP / DINO ViT-B/16 at 224 px: the cost of the real backbones."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, ViTConfig, ViTModel

    from scoft.tiny import vgg16_tiny_state_dict

    distances = {}
    needed = config.distances_needed()
    if "vgg" in needed:
        vgg = VGG16Features.from_state_dict(vgg16_tiny_state_dict((64, 128, 256, 512, 512)))
        distances["vgg"] = VGGDistance(freeze(vgg, device, dtype))
    if "embedding" in needed:
        vit = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
        with device:
            clip = CLIPVisionModelWithProjection(
                CLIPVisionConfig(**vit, image_size=224, patch_size=16, projection_dim=512)
            )
            dino = ViTModel(ViTConfig(**vit, image_size=224, patch_size=16), add_pooling_layer=False)
        encoders = [
            ImageEncoder(clip, (224, 224), CLIP_MEAN, CLIP_STD),
            ImageEncoder(dino, (224, 224), IMAGENET_MEAN, IMAGENET_STD),
        ]
        distances["embedding"] = freeze(EmbeddingDistance(encoders), device, dtype)
    return Backbones(distances)


def synthetic_batch(tokenizer, batch: int, resolution: int, negatives: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "pixel_values": torch.rand(batch, 3, resolution, resolution, generator=gen) * 2 - 1,
        "negative_pixel_values": torch.rand(batch, negatives, 3, resolution, resolution, generator=gen) * 2 - 1,
        "negative_mask": torch.ones(batch, negatives, dtype=torch.bool),
        "input_ids": tokenize(tokenizer, ["a photo of a temple in Korea"] * batch),
        "blip_input_ids": tokenize(tokenizer, ["a photo of a building"] * batch),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def bench_variant(args: argparse.Namespace, variant: str, device: torch.device) -> dict[str, float]:
    from accelerate import Accelerator

    config = TrainConfig(
        variant=variant,
        resolution=args.resolution,
        train_batch_size=args.batch,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_accumulation_steps=args.accum,
        contrastive_interval=args.interval,
        chain_length=args.chain_length,
        embedding_backend="local",  # tiny CLIP/DINO folders, or ViT-B/16 stand-ins of DreamSim's cost
    )
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=device.type == "cpu")
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.mixed_precision, torch.float32)
    torch.manual_seed(0)
    models = sd_sized_models(device) if args.sd_size else load_models(args.models / "sd")
    params = prepare_models(models, config, device, weight_dtype)
    if args.sd_size:
        backbones = vit_b16_backbones(config, device, weight_dtype)
    else:
        backbones = build_backbones(config, args.models / "backbone", device, weight_dtype)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.adam_weight_decay)
    unet, optimizer = accelerator.prepare(models.unet, optimizer)
    with torch.no_grad():
        null = models.text_encoder(tokenize(models.tokenizer, [""]).to(device))[0]
    ctx = StepContext(config, models, unet, accelerator.unwrap_model(unet), null, backbones, weight_dtype, device)
    batch = synthetic_batch(models.tokenizer, args.batch, args.resolution, args.negatives)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    plain: list[float] = []
    chain: list[float] = []
    update: list[float] = []
    steps: list[float] = []
    accum = args.accum
    clock = CLOCKS[args.clock]
    total_micro = (args.warmup + args.steps) * accum
    step_start = clock()
    for micro in range(total_micro):
        timed = micro >= args.warmup * accum
        is_chain = config.uses_chain and micro % config.contrastive_interval == 0
        gen = torch.Generator().manual_seed(mix_seed(config.seed, micro, 0))
        _sync(device)
        t0 = clock()
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
            t2 = clock()
            if timed:
                update.append(t2 - t1)
                steps.append(t2 - step_start)
            step_start = clock()
    plain_med = statistics.median(plain)
    chain_med = statistics.median(chain) if chain else plain_med
    share = 1 / config.contrastive_interval if config.uses_chain else 0.0
    result = {
        "plain_micro_s": plain_med,
        "chain_micro_s": chain_med if chain else float("nan"),
        "median_step_s": statistics.median(steps),
        "amortised_step_s": accum * ((1 - share) * plain_med + share * chain_med) + statistics.median(update),
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan"),
        "update_s": statistics.median(update),
    }
    accelerator.free_memory()
    del ctx, unet, optimizer, models, backbones
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, help="tiny models folder (built with scoft.tiny when absent)")
    p.add_argument("--sd-size", action="store_true", help="SD-1.5-sized random models instead of the tiny ones")
    p.add_argument("--device", default="cpu")
    p.add_argument("--resolution", type=int, default=None, help="default 64 (tiny) or 512 (--sd-size)")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--negatives", type=int, default=3)
    p.add_argument("--accum", type=int, default=TrainConfig().gradient_accumulation_steps)
    p.add_argument("--interval", type=int, default=TrainConfig().contrastive_interval)
    p.add_argument("--chain-length", type=int, default=TrainConfig().chain_length)
    p.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        help="'process' (CPU time of this process: robust on a shared CPU) or 'wall'; default: wall on CUDA",
    )
    p.add_argument("--steps", type=int, default=10, help="timed optimizer steps per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps per variant")
    p.add_argument("--variants", nargs="+", default=["ldm", "m", "mp", "mpc"], choices=["ldm", "m", "mp", "mpc"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.clock = args.clock or ("wall" if device.type == "cuda" else "process")
    args.resolution = args.resolution or (512 if args.sd_size else 64)
    if not args.sd_size:
        from scoft.tiny import build_tiny

        if args.models is None:
            args.models = Path(tempfile.mkdtemp(prefix="scoft-bench-"))
        build_tiny(args.models, parts=("sd", "backbone"))

    label = "SD-1.5-sized" if args.sd_size else "tiny"
    print(
        f"# {label} models, {args.resolution} px, batch {args.batch}, {args.negatives} negatives, device {device}, "
        f"mixed precision {args.mixed_precision}, gradient checkpointing {args.gradient_checkpointing}, "
        f"accumulation {args.accum}, chain of {args.chain_length} every {args.interval} micro-batches, "
        f"{args.steps} timed steps, {args.clock} clock"
    )
    results = {v: bench_variant(args, v, device) for v in args.variants}
    header = f"{'variant':<8}{'plain micro s':>14}{'chain micro s':>14}{'median step s':>15}{'amortised s':>13}"
    header += f"{'x ldm':>8}{'peak GiB':>10}"
    print(header)
    base = results.get("ldm", {}).get("amortised_step_s")
    for variant, r in results.items():
        ratio = r["amortised_step_s"] / base if base else float("nan")
        print(
            f"{variant:<8}{r['plain_micro_s']:>14.4f}{r['chain_micro_s']:>14.4f}{r['median_step_s']:>15.4f}"
            f"{r['amortised_step_s']:>13.4f}{ratio:>8.2f}{r['peak_gib']:>10.2f}"
        )
    if base and "mpc" in results:
        ratio = results["mpc"]["amortised_step_s"] / base
        verdict = "meets" if ratio <= 1.5 else "misses"
        print(f"SCoFT+MPC / LDM-only, amortised per optimizer step: {ratio:.2f}x ({verdict} the 1.5x target)")
        mpc = results["mpc"]
        cells = []
        for interval in (10, 20, 40, 80):
            share = 1 / interval
            micro = (1 - share) * mpc["plain_micro_s"] + share * mpc["chain_micro_s"]
            cells.append(f"{interval}: {(args.accum * micro + mpc['update_s']) / base:.2f}x")
        print("same measurements, other contrastive_interval values: " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
