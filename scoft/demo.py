"""``python -m scoft.demo``: the researcher's whole path on tiny offline models, on CPU, in a few minutes.

tiny models -> a small synthetic CCUB-like set per culture -> guided negatives -> the design's LoRA variants (a few
steps each) -> ``scoft sample`` of the round into ``VAR/rounds/{design id}/manifest.jsonl``. Model paths come from the
design (``${SCOFT_DEMO_MODELS:-var/models}`` in ``study_designs/demo.toml``; this command sets it to ``VAR/models``
when unset). Every stage reuses what a previous run left.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scoft.cli import add_quiet, error
from study_designs.schema import Design, DesignError, load_design

ENV = "SCOFT_DEMO_MODELS"
TRAIN_SETTINGS: dict[str, Any] = {
    "resolution": 64,
    "train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "mixed_precision": "no",
    "lora_rank": 4,
    "lora_alpha": 4,
    "learning_rate": 5e-3,
    "lr_schedule": "constant",
    "chain_length": 3,
    "contrastive_interval": 3,
    "embedding_backend": "local",  # the tiny models have CLIP/DINO folders, not DreamSim weights
}


class DemoError(Exception):
    pass


def tiny_root(design: Design) -> Path:
    """The folder the design's base models live in (``.../tiny`` for ``.../tiny/sd``); all must agree."""
    bases = {m.base_path() for m in design.models}
    if len(bases) != 1:
        raise DemoError(f"the demo builds one tiny base model, but the design names {len(bases)}: {sorted(bases)}")
    base = Path(bases.pop())
    if base.name != "sd":
        raise DemoError(f"the demo's base must be a folder named 'sd' (the tiny model's layout), got {base}")
    return base.parent


def lora_runs(design: Design) -> list[tuple[str, str, Path]]:
    """(culture, variant, output folder) of every LoRA the design needs, each once."""
    runs: dict[Path, tuple[str, str, Path]] = {}
    for m in design.models:
        for c in design.cultures:
            path = m.lora_path(c.id)
            if path is not None:
                runs.setdefault(Path(path), (c.id, m.variant, Path(path)))
    return list(runs.values())


def _stage(n: int, total: int, text: str) -> Callable[[], None]:
    print(f"[{n}/{total}] {text}", flush=True)
    start = time.perf_counter()
    return lambda: print(f"      done in {time.perf_counter() - start:.1f} s", flush=True)


def run_demo(
    design_path: Path,
    var: Path,
    *,
    images_per_culture: int = 4,
    negatives_k: int = 2,
    negative_steps: int = 8,
    train_steps: int = 6,
    sample_steps: int = 20,
    batch_size: int = 4,
    progress: bool = True,
) -> Path:
    """Run every stage; returns the manifest path."""
    from scoft.data import synthesize_ccub
    from scoft.negatives import make_negatives
    from scoft.sample import Settings, lora_file
    from scoft.sample import run as sample_run
    from scoft.tiny import build_tiny

    design = load_design(design_path)
    root = tiny_root(design)
    data_root = var / "data"
    out = var / "rounds" / design.id
    runs = lora_runs(design)
    total = 5

    done = _stage(1, total, f"tiny models in {root}")
    models = build_tiny(root, parts=("sd", "controlnet", "depth", "backbone"))
    done()

    done = _stage(2, total, f"synthetic CCUB-like images in {data_root}")
    for c in design.cultures:
        folder = data_root / c.id
        if not (folder / "metadata.jsonl").is_file():
            synthesize_ccub(folder, culture=c.id, n_images=images_per_culture, resolution=64, seed=design.seed)
    done()

    done = _stage(3, total, f"guided negatives ({negatives_k} per image)")
    for c in design.cultures:
        make_negatives(
            data_root / c.id,
            base=models["sd"],
            controlnet=models["controlnet"],
            depth=models["depth"],
            k=negatives_k,
            steps=negative_steps,
            seed=design.seed,
            batch_size=batch_size,
            device="cpu",
            progress=progress,
        )
    done()

    done = _stage(4, total, f"LoRA variants ({len(runs)} runs of {train_steps} steps)")
    from scoft.config import TrainConfig
    from scoft.train import train

    for culture, variant, folder in runs:
        if lora_file(folder).is_file():
            continue
        print(f"      {culture} / {variant} -> {folder}", flush=True)
        config = TrainConfig(**TRAIN_SETTINGS, variant=variant, max_train_steps=train_steps, seed=design.seed)
        train(  # a folder without its LoRA is an interrupted earlier run: start it over
            config,
            models["sd"],
            data_root / culture,
            folder,
            backbone_dir=models["backbone"],
            show_progress=progress,
            overwrite=True,
        )
    done()

    done = _stage(5, total, f"sampling the round into {out}")
    result = sample_run(
        design, out, settings=Settings(steps=sample_steps), batch_size=batch_size, device="cpu", progress=progress
    )
    done()
    print(f"{result.manifest}: {result.n_images} images ({result.n_sampled} sampled, {result.n_reused} reused)")
    return result.manifest


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scoft.demo", description=__doc__.splitlines()[0])
    p.add_argument("--design", type=Path, default=Path("study_designs/demo.toml"), help="study design TOML")
    p.add_argument("--var", type=Path, default=Path("var"), help="working folder (default var)")
    p.add_argument("--images", type=int, default=4, help="synthetic images per culture (default 4)")
    p.add_argument("--negatives", type=int, default=2, help="negatives per image (default 2)")
    p.add_argument("--train-steps", type=int, default=6, help="optimizer steps per LoRA (default 6)")
    p.add_argument("--sample-steps", type=int, default=20, help="denoising steps when sampling (default 20)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the models are tiny)")
    add_quiet(p)
    return p


def main(argv: list[str] | None = None) -> int:
    from scoft.quiet import quiet_third_party

    quiet_third_party()
    import torch

    from scoft.sample import SampleError

    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault(ENV, str(args.var / "models"))
    try:
        run_demo(
            args.design,
            args.var,
            images_per_culture=args.images,
            negatives_k=args.negatives,
            train_steps=args.train_steps,
            sample_steps=args.sample_steps,
            progress=not args.quiet,
        )
    except (DesignError, DemoError, SampleError, FileNotFoundError, ValueError) as err:
        return error("python -m scoft.demo", err)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
