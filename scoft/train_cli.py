"""``python -m scoft train``: parse, check every path and image (no torch yet), then train.

The checks of :func:`scoft.checks.preflight` run before ``scoft.train`` (torch, diffusers) is imported, so a wrong
folder or a corrupt image fails in about a second with one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scoft.cli import add_quiet, error
from scoft.config import VARIANTS, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scoft train", description="Train a SCoFT LoRA variant.")
    p.add_argument("--base", type=Path, required=True, help="SD-1.x pipeline folder (diffusers layout)")
    p.add_argument("--data", type=Path, required=True, help="folder with metadata.jsonl and the images")
    p.add_argument("--variant", choices=VARIANTS, required=True, help="ldm, m, mp or mpc")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--config", type=Path, help="TOML file with training settings ([train] table)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (overrides the epochs)")
    p.add_argument("--seed", type=int, help="random seed (default from the config: 1024)")
    p.add_argument("--resolution", type=int, help="training resolution in px (default 512)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    p.add_argument("--rank", type=int, help="LoRA rank (default 64; alpha follows unless the config sets it)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    p.add_argument("--weights-variant", help="load e.g. the fp16 weight files (diffusion_pytorch_model.fp16.*)")
    p.add_argument("--caption-with", type=Path, help="captioning model folder: fill missing blip_text first")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue from the latest OUT/checkpoint-*")
    run.add_argument("--overwrite", action="store_true", help="replace what an earlier run wrote into OUT")
    p.add_argument("--stop-after", type=int, help="end this invocation after that optimizer step (resume later)")
    p.add_argument("--backbone", type=Path, help="perceptual backbones: vgg16.safetensors, clip/, dino/")
    add_quiet(p, "hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    from scoft.checks import preflight

    args = build_parser().parse_args(argv)
    try:
        overrides = {
            "variant": args.variant,
            "max_train_steps": args.max_steps,
            "seed": args.seed,
            "resolution": args.resolution,
            "learning_rate": args.lr,
            "lora_rank": args.rank,
            "dataloader_num_workers": args.workers,
        }
        config = load_config(args.config, **overrides)
        if args.rank is not None and "lora_alpha" not in load_config(args.config).model_fields_set:
            config = load_config(args.config, **overrides, lora_alpha=args.rank)
        common = {
            "backbone_dir": args.backbone,
            "resume": args.resume,
            "overwrite": args.overwrite,
            "weights_variant": args.weights_variant,
        }
        preflight(
            config,
            args.base,
            args.data,
            args.out,
            caption_with=args.caption_with,
            progress=not args.quiet,
            **common,
        )
        from scoft.quiet import quiet_third_party

        quiet_third_party()
        from scoft.train import train

        result = train(
            config,
            args.base,
            args.data,
            args.out,
            stop_after=args.stop_after,
            show_progress=not args.quiet,
            checked=True,
            **common,
        )
    except (ValueError, FileNotFoundError) as exc:
        return error("python -m scoft train", _one_line(exc))
    if result.finished:
        print(f"wrote {result.lora_path} ({result.steps} steps)")
    else:
        print(f"stopped at step {result.steps} of {result.max_steps}; continue with --resume")
    return 0


def _one_line(exc: Exception) -> str:
    """A pydantic or other multi-line message as one line."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
    return " ".join(str(exc).split())
