"""Images per second of ``scoft sample`` against a plain diffusers pipeline loop, in the same run.

    python bench/sample.py                                  # tiny random model, 64 px, CPU (1 thread)
    python bench/sample.py --sd-size --device cuda          # SD-1.5-sized random model, 512 px, fp16

Both sides use the same base folder, DPM-Solver multistep, steps, guidance, batch size and per-image seeds, and both
write every image as a PNG. The plain side is ``StableDiffusionPipeline(prompts, generator=[...]).images`` followed by
``image.save``; the ``scoft sample`` side is ``scoft.sample.run`` on a fresh output folder (design parsing, path
checks, batch-invariant kernels on CPU, hashing, the manifest). Each side loads its pipeline once per repeat; the
median repeat is reported, as wall time and as process CPU time (steadier on a shared machine; with one torch thread
it is the compute cost). ``scoft sample --fast-kernels`` (vendor convolution kernels on CPU) is timed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def design_toml(base: Path, n_prompts: int, seeds: int) -> str:
    prompts = "\n".join(
        f'[[prompts]]\nid = "p{i}"\nculture = "korea"\ntext = "Photo number {i} of a street, in Korea"\n'
        f"seeds = {list(range(100 * i, 100 * i + seeds))}\n"
        for i in range(n_prompts)
    )
    return f"""
id = "bench"
title = "bench"
[[cultures]]
id = "korea"
label = "Korea"
adjective = "Korean"
[[models]]
id = "sd"
label = "sd"
base = "{base}"
variant = "base"
[[models]]
id = "sd_again"
label = "sd again"
base = "{base}"
variant = "base"
[[criteria]]
id = "description"
question = "Q?"
best_label = "best"
worst_label = "worst"
{prompts}
[assignment]
pages_per_participant = 1
target_rankings_per_page = 1
[recruitment]
completion_code = "X"
[consent]
text = "x"
content_warning = "x"
"""


def build_sd_sized(out: Path) -> Path:
    """An SD-1.5-shaped pipeline folder with random weights (fp16 files)."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import sd_sized_models

    m = sd_sized_models(torch.device("cpu"))
    pipe = StableDiffusionPipeline(
        vae=m.vae,
        text_encoder=m.text_encoder,
        tokenizer=m.tokenizer,
        unet=m.unet,
        scheduler=DPMSolverMultistepScheduler.from_config(m.noise_scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16).save_pretrained(out)
    return out


def plain_loop(base: Path, work: list, out: Path, args: argparse.Namespace) -> tuple[float, float]:
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    start, cpu = time.perf_counter(), time.process_time()
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    pipe = StableDiffusionPipeline.from_pretrained(
        base, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
    )
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(args.device)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(work), args.batch):
        chunk = work[i : i + args.batch]
        images = pipe(
            [w.prompt for w in chunk],
            generator=[torch.Generator("cpu").manual_seed(w.seed) for w in chunk],
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
        ).images
        for w, image in zip(chunk, images, strict=True):
            image.save(out / f"{w.prompt_id}_{w.seed}_{w.model_id}.png")
    _sync(args.device)
    return time.perf_counter() - start, time.process_time() - cpu


def scoft_run(design, out: Path, args: argparse.Namespace, exact: bool | None) -> tuple[float, float]:
    from scoft.sample import Settings, run

    start, cpu = time.perf_counter(), time.process_time()
    result = run(
        design,
        out,
        settings=Settings(steps=args.steps, guidance=args.guidance),
        batch_size=args.batch,
        device=args.device,
        exact=exact,
        progress=False,
    )
    _sync(args.device)
    assert result.n_sampled == result.n_images
    return time.perf_counter() - start, time.process_time() - cpu


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sd-size", action="store_true", help="SD-1.5-sized random model at 512 px")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=None, help="default 10 (tiny) or 25 (--sd-size)")
    p.add_argument("--guidance", type=float, default=4.5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompts", type=int, default=None, help="prompts (x 2 seeds x 2 models); default 4 (tiny), 2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--invariance", action="store_true", help="also sample with batch 1 and compare the PNG bytes")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.steps = args.steps or (25 if args.sd_size else 10)
    n_prompts = args.prompts or (2 if args.sd_size else 4)

    from scoft.sample import build_work
    from study_designs.schema import load_design

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.sd_size:
            base = build_sd_sized(tmp / "sd15")
        else:
            from scoft.tiny import build_tiny

            base = build_tiny(tmp / "tiny", parts=("sd",))["sd"]
        (tmp / "design.toml").write_text(design_toml(base, n_prompts, 2))
        design = load_design(tmp / "design.toml")
        work = build_work(design)
        rows: dict[str, list[tuple[float, float]]] = {"plain diffusers loop": [], "scoft sample": []}
        if args.device == "cpu":
            rows["scoft sample --fast-kernels"] = []
        plain_loop(base, work[: args.batch], tmp / "warm", args)  # warm-up (imports, kernels)
        for r in range(args.repeats):
            rows["plain diffusers loop"].append(plain_loop(base, work, tmp / f"plain{r}", args))
            rows["scoft sample"].append(scoft_run(design, tmp / f"scoft{r}", args, None))
            if "scoft sample --fast-kernels" in rows:
                rows["scoft sample --fast-kernels"].append(scoft_run(design, tmp / f"fast{r}", args, False))
        same = None
        if args.invariance:
            batched = {r["file"]: r["sha256"] for r in read_manifest(tmp / "scoft0")}
            scoft_run(design, tmp / "single", argparse.Namespace(**{**vars(args), "batch": 1}), None)
            single = {r["file"]: r["sha256"] for r in read_manifest(tmp / "single")}
            same = sum(batched[f] == single[f] for f in batched)

    label = "SD-1.5-sized, 512 px" if args.sd_size else "tiny, 64 px"
    print(
        f"sampling: {label}, {args.device}, {len(work)} images, batch {args.batch}, {args.steps} steps,"
        f" guidance {args.guidance}, median of {args.repeats} repeats; ratio = plain time / this time"
    )
    n = len(work)
    base_wall = statistics.median(t for t, _ in rows["plain diffusers loop"])
    base_cpu = statistics.median(c for _, c in rows["plain diffusers loop"])
    print(f"{'path':<30} {'wall s':>8} {'images/s':>9} {'ratio':>7} {'cpu s':>8} {'img/cpu-s':>9} {'ratio':>7}")
    for name, times in rows.items():
        wall, cpu = statistics.median(t for t, _ in times), statistics.median(c for _, c in times)
        print(
            f"{name:<30} {wall:>8.2f} {n / wall:>9.2f} {base_wall / wall:>7.3f}"
            f" {cpu:>8.2f} {n / cpu:>9.2f} {base_cpu / cpu:>7.3f}"
        )
    if same is not None:
        print(f"PNG bytes identical between batch {args.batch} and batch 1: {same}/{len(work)} images")
    return 0


def read_manifest(folder: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


if __name__ == "__main__":
    raise SystemExit(main())
