"""Training configuration: one frozen model, loaded from TOML, whose defaults follow the authors' released run."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Variant = Literal["ldm", "m", "mp", "mpc"]
VARIANTS: tuple[str, ...] = ("ldm", "m", "mp", "mpc")


class TrainConfig(BaseModel):
    """Every weight, interval and optimiser setting of a SCoFT LoRA run.

    Loss per micro-batch, by variant, as the authors' code builds them (0.7 L_LDM + 0.3 L_M + 0.05 L_C + 0.01 L_vgg):

    - ``ldm``: L_LDM (weight 1, plain LoRA fine-tuning);
    - ``m``: ``weight_ldm`` L_LDM + ``weight_memorization`` L_M;
    - ``mp``: as ``m``, plus on chain micro-batches ``weight_contrastive`` D(x_hat, x+) (term ``c``: the contrastive
      backbone's pull toward the positive, the authors' ``--onlypositive``) + ``weight_perceptual`` L_vgg (term ``p``);
    - ``mpc``: as ``mp``, with term ``c`` the full contrastive loss D(x_hat, x+) - mean_k D(x_hat, x-_k)
      (or its triplet form).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: Variant = "mpc"
    seed: int = 1024

    # data
    resolution: int = Field(512, ge=8)
    center_crop: bool = True
    random_flip: bool = True
    joint_flip: bool = Field(True, description="flip a positive and its negatives together")
    max_negatives: int = Field(3, ge=0)
    dataloader_num_workers: int = Field(0, ge=0)

    # optimisation
    train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(4, ge=1)
    num_train_epochs: int = Field(100, ge=1)
    max_train_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides num_train_epochs")
    learning_rate: float = Field(1e-4, gt=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    lr_schedule: Literal["authors", "cosine", "constant"] = Field(
        "authors",
        description="'authors': cosine built over max_train_steps x gradient_accumulation_steps, stepped per optimizer "
        "step (ends at ~0.85 lr with 4 accumulation steps); 'cosine': to zero over the run; 'constant'",
    )
    lr_warmup_steps: int = Field(0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = "fp16"
    gradient_checkpointing: bool = False

    # checkpoints
    checkpointing_steps: int = Field(1000, ge=1)
    checkpoints_total_limit: int = Field(3, ge=1)

    # LoRA
    lora_rank: int = Field(64, ge=1)
    lora_alpha: float = Field(64, gt=0)
    lora_target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")

    # loss weights
    weight_ldm: float = 0.7
    weight_memorization: float = 0.3
    weight_perceptual: float = 0.01
    weight_contrastive: float = 0.05

    # chain (perceptual and contrastive micro-batches)
    contrastive_interval: int = Field(10, ge=1, description="run the chain on one micro-batch in this many")
    chain_length: int = Field(20, ge=1, description="timesteps from t down to 0")
    guidance_scale: float = 4.5
    grad_step: Literal["first", "random", "last"] = "first"
    chain_sampler: Literal["ddpm", "ddim"] = Field(
        "ddpm", description="'ddpm': DDPMScheduler.step posterior (noise for t > 0, seeded per step); 'ddim'"
    )
    chain_half_precision: bool = Field(True, description="no-grad chain steps in fp16 on CUDA")
    contrastive_form: Literal["difference", "triplet"] = "difference"
    margin: float = Field(0.0, ge=0)

    # backbones: which distance each term uses
    perceptual_distance: Literal["vgg", "embedding"] = "vgg"
    contrastive_distance: Literal["vgg", "embedding"] = "embedding"
    embedding_backend: Literal["dreamsim", "local"] = Field(
        "dreamsim",
        description="'dreamsim' (the authors' backbone): the dreamsim package with weights in BACKBONE/dreamsim/; "
        "'local': 1 - cosine of concatenated CLIP + DINO embeddings from BACKBONE/clip/ and BACKBONE/dino/",
    )

    # exact savings (scoft.cache): encode each image (both flips) and caption once
    cache_latents: bool = Field(True, description="cache VAE posteriors; applies under center_crop only")
    cache_text_embeddings: bool = True

    # watching a run: validation grids and trackers (train_log.csv is always written)
    validation_steps: int = Field(500, ge=0, description="a validation grid every N optimizer steps; 0: never")
    validation_prompts: tuple[str, ...] = Field((), description="empty: the first training record's caption")
    validation_seeds: tuple[int, ...] = (0, 1)
    validation_inference_steps: int = Field(25, ge=1)
    validation_guidance_scale: float = 4.5
    report_to: Literal["auto", "tensorboard", "none"] = Field(
        "auto", description="'auto': TensorBoard when it is installed"
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.contrastive_form == "difference" and self.margin != 0:
            raise ValueError("margin applies to contrastive_form = 'triplet' only")
        return self

    @property
    def uses_memorization(self) -> bool:
        return self.variant != "ldm"

    @property
    def uses_perceptual(self) -> bool:
        return self.variant in ("mp", "mpc")

    @property
    def uses_contrastive(self) -> bool:
        """Term ``c`` (the contrastive backbone): positive-only in ``mp``, against the negatives in ``mpc``."""
        return self.variant in ("mp", "mpc")

    @property
    def uses_negatives(self) -> bool:
        return self.variant == "mpc"

    @property
    def uses_chain(self) -> bool:
        return self.uses_perceptual or self.uses_contrastive

    def loss_weights(self) -> dict[str, float]:
        """Weights of the loss terms this variant optimises (keys ``ldm, m, p, c``)."""
        if self.variant == "ldm":
            return {"ldm": 1.0}
        weights = {"ldm": self.weight_ldm, "m": self.weight_memorization}
        if self.uses_perceptual:
            weights["p"] = self.weight_perceptual
        if self.uses_contrastive:
            weights["c"] = self.weight_contrastive
        return weights

    def distances_needed(self) -> set[str]:
        """Backbone distances the variant needs (``vgg``, ``embedding``)."""
        needed: set[str] = set()
        if self.uses_perceptual:
            needed.add(self.perceptual_distance)
        if self.uses_contrastive:
            needed.add(self.contrastive_distance)
        return needed


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a TOML file (a flat table, or its ``[train]`` table) and apply keyword overrides (``None`` is ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        data = dict(raw["train"]) if "train" in raw else {k: v for k, v in raw.items() if not isinstance(v, dict)}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**data)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_config(config: TrainConfig, run: dict[str, Any] | None = None) -> str:
    """The resolved config as a TOML ``[train]`` table (``None`` fields left out) and ``run`` facts as ``[run]``."""
    lines = ["[train]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in config.model_dump().items() if v is not None]
    if run:
        lines += ["", "[run]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in run.items() if v is not None]
    return "\n".join(lines) + "\n"
