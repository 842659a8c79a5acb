"""LoRA on the UNet attention projections (peft), its state and its diffusers-compatible file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

ADAPTER = "default"
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
DEFAULT_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")


def add_lora(
    unet: nn.Module, rank: int = 64, alpha: float | None = None, target_modules: tuple[str, ...] = DEFAULT_TARGETS
) -> list[nn.Parameter]:
    """Freeze ``unet``, add a LoRA adapter to its attention projections and return the trainable parameters (fp32)."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank if alpha is None else alpha,
        init_lora_weights="gaussian",
        target_modules=list(target_modules),
    )
    unet.add_adapter(config)
    params = [p for p in unet.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"no UNet module matched the LoRA targets {list(target_modules)}")
    for p in params:
        p.data = p.data.float()
    return params


def lora_state_dict(unet: nn.Module) -> dict[str, Tensor]:
    """The adapter's weights in peft naming (for checkpoints)."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet, adapter_name=ADAPTER).items()}


def set_lora_state_dict(unet: nn.Module, state: dict[str, Tensor]) -> None:
    """Load weights saved by ``lora_state_dict`` into the adapter; every adapter weight must be present."""
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(unet, state, adapter_name=ADAPTER)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected:
        raise ValueError(f"LoRA state does not match the adapter: missing {missing[:3]}, unexpected {unexpected[:3]}")


def save_lora(unet: nn.Module, out_dir: str | Path, is_main_process: bool = True) -> Path:
    """Write ``OUT/pytorch_lora_weights.safetensors`` in diffusers naming, loadable by
    ``StableDiffusionPipeline.load_lora_weights(OUT)``."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    out_dir = Path(out_dir)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name=ADAPTER))
    layers = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in layers.items()}
    metadata = unet.peft_config[ADAPTER].to_dict()
    StableDiffusionPipeline.save_lora_weights(
        out_dir,
        unet_lora_layers=layers,
        is_main_process=is_main_process,
        weight_name=LORA_WEIGHT_NAME,
        safe_serialization=True,
        unet_lora_adapter_metadata=metadata,
    )
    return out_dir / LORA_WEIGHT_NAME
