"""LoRA files in the diffusers format, for ``checkpoint-N/`` and the final LoRA, and ``python -m scoft export-lora``.

Both hold ``pytorch_lora_weights.safetensors`` as ``StableDiffusionPipeline.save_lora_weights`` writes it: keys
``unet.{module}.lora.down.weight`` / ``.lora.up.weight``, the adapter's ``LoraConfig`` (rank ``r``, ``lora_alpha``,
target modules) in the safetensors metadata, so a stock ``load_lora_weights(folder)`` attaches the adapter with the
trained scale. Older checkpoints stored peft-keyed ``lora_state.safetensors`` (``{module}.lora_A.weight``), which
stock diffusers loads as nothing; they still resume, and ``export-lora`` converts them.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from scoft.cli import error
from scoft.lora import LORA_WEIGHT_NAME, save_lora, set_lora_state_dict

LEGACY_CHECKPOINT_LORA = "lora_state.safetensors"
METADATA_KEY = "lora_adapter_metadata"


class LoraFileError(ValueError):
    pass


def is_unet_keyed(keys: list[str]) -> bool:
    """True when a LoRA file names UNet modules the way diffusers' loaders look for them (``unet.`` prefix, or the
    kohya ``lora_unet_`` prefix); a peft-keyed file (``down_blocks...lora_A.weight``) is not."""
    return any(k.startswith(("unet.", "lora_unet_")) for k in keys)


def read_lora_file(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and the UNet adapter config (``r``, ``lora_alpha``, ... without the ``unet.`` prefix) of a LoRA file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file not found: {path}")
    with safe_open(str(path), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a mapping)
        metadata = fh.metadata() or {}
    raw = json.loads(metadata.get(METADATA_KEY, "{}"))
    adapter = {k.removeprefix("unet."): v for k, v in raw.items() if k.startswith("unet.")}
    return tensors, adapter


def diffusers_to_peft(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``unet.{module}.lora.down.weight`` keys to peft's ``{module}.lora_A.weight`` (UNet keys only)."""
    from diffusers.utils import convert_unet_state_dict_to_peft

    unet = {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")}
    return convert_unet_state_dict_to_peft(unet)


def peft_to_diffusers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """peft keys (as ``get_peft_model_state_dict`` returns them) to the diffusers file's ``unet.`` keys."""
    from diffusers.utils import convert_state_dict_to_diffusers

    return {f"unet.{k}": v for k, v in convert_state_dict_to_diffusers(state).items()}


def save_checkpoint_lora(unet: nn.Module, folder: str | Path, is_main_process: bool = True) -> Path:
    """The adapter of ``unet`` as ``folder/pytorch_lora_weights.safetensors`` (diffusers format)."""
    return save_lora(unet, folder, is_main_process=is_main_process)


def load_checkpoint_lora(unet: nn.Module, folder: str | Path) -> Path:
    """Load a checkpoint's LoRA into ``unet``'s adapter: the diffusers file, else a legacy peft-keyed one."""
    folder = Path(folder)
    path = folder / LORA_WEIGHT_NAME
    if path.is_file():
        tensors, _ = read_lora_file(path)
        set_lora_state_dict(unet, diffusers_to_peft(tensors))
        return path
    legacy = folder / LEGACY_CHECKPOINT_LORA
    if legacy.is_file():
        from safetensors.torch import load_file

        set_lora_state_dict(unet, load_file(str(legacy)))
        return legacy
    raise FileNotFoundError(f"no {LORA_WEIGHT_NAME} or {LEGACY_CHECKPOINT_LORA} in {folder}")


def register_lora_hooks(accelerator: Any, raw_unet: nn.Module) -> None:
    """Accelerate state hooks: checkpoints hold the LoRA (diffusers format), not the frozen UNet."""

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        for i in reversed(range(len(models))):
            if accelerator.unwrap_model(models[i]) is raw_unet:
                save_checkpoint_lora(raw_unet, output_dir, is_main_process=accelerator.is_main_process)
                if weights:
                    weights.pop(i)

    def load_hook(models: list, input_dir: str) -> None:
        for i in reversed(range(len(models))):
            if accelerator.unwrap_model(models[i]) is raw_unet:
                models.pop(i)
                load_checkpoint_lora(raw_unet, input_dir)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _run_settings(source: Path) -> dict[str, Any]:
    """The ``[train]`` table of the run's ``config.toml`` next to, or one folder above, ``source``."""
    folder = source if source.is_dir() else source.parent
    for candidate in (folder / "config.toml", folder.parent / "config.toml"):
        if candidate.is_file():
            return dict(tomllib.loads(candidate.read_text()).get("train", {}))
    return {}


def _find_lora(source: Path) -> Path:
    if source.is_file():
        return source
    for name in (LORA_WEIGHT_NAME, LEGACY_CHECKPOINT_LORA):
        if (source / name).is_file():
            return source / name
    raise LoraFileError(f"no {LORA_WEIGHT_NAME} or {LEGACY_CHECKPOINT_LORA} in {source}")


def export_lora(source: str | Path, out: str | Path, alpha: float | None = None) -> Path:
    """Write the LoRA of ``source`` (a ``checkpoint-N/`` or run folder, or a LoRA file, either format) to the
    diffusers-format file ``out``. Rank comes from the weights; alpha from the file's metadata, else the run's
    ``config.toml``, else ``alpha`` (which overrides both)."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig

    source, out = Path(source), Path(out)
    if not source.exists():
        raise FileNotFoundError(f"not found: {source}")
    path = _find_lora(source)
    tensors, adapter = read_lora_file(path)
    peft_state = diffusers_to_peft(tensors) if is_unet_keyed(list(tensors)) else tensors
    downs = [v for k, v in peft_state.items() if k.endswith("lora_A.weight")]
    if not downs or not all(k.endswith(("lora_A.weight", "lora_B.weight")) for k in peft_state):
        raise LoraFileError(f"{path} is not a UNet LoRA (peft or diffusers keys expected)")
    ranks = {int(v.shape[0]) for v in downs}
    if len(ranks) != 1:
        raise LoraFileError(f"{path} mixes LoRA ranks {sorted(ranks)}; export supports one rank")
    rank = ranks.pop()
    settings = _run_settings(source)
    if alpha is None:
        alpha = adapter.get("lora_alpha", settings.get("lora_alpha"))
    if alpha is None:
        raise LoraFileError(f"LoRA alpha of {path} unknown (no metadata, no run config.toml): pass --alpha")
    targets = sorted({k.split(".lora_")[0].split(".")[-1] for k in peft_state})
    targets = sorted({"to_out.0" if t == "0" else t for t in targets})
    metadata = LoraConfig(r=rank, lora_alpha=float(alpha), target_modules=targets).to_dict()
    layers = {k.removeprefix("unet."): v.float().contiguous() for k, v in peft_to_diffusers(peft_state).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        out.parent,
        unet_lora_layers=layers,
        weight_name=out.name,
        safe_serialization=True,
        unet_lora_adapter_metadata=metadata,
    )
    return out


def export_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scoft export-lora",
        description="Write a checkpoint's LoRA (diffusers or legacy peft keys) as a diffusers-format LoRA file.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint-N/ or run folder, or a LoRA file")
    p.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    p.add_argument("--alpha", type=float, help="LoRA alpha when neither the file nor the run's config.toml has it")
    args = p.parse_args(argv)
    if args.out.suffix != ".safetensors":
        return error(p.prog, f"--out must be a .safetensors file, got {args.out}")
    try:
        path = export_lora(args.checkpoint, args.out, args.alpha)
    except (LoraFileError, FileNotFoundError) as exc:
        return error(p.prog, exc)
    print(f"wrote {path}")
    return 0
