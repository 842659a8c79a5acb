"""Perceptual backbones and the distances SCoFT uses between a decoded sample and real images.

Every backbone is frozen, built once on an explicit device and dtype (``build_backbones``) and passed in. A backbone
has ``features(images)`` (images in [-1, 1], N x 3 x H x W) and ``compare(fa, fb)`` returning one distance per row,
so features of the positive and the negatives are computed once and compared with the sample's.

- ``VGG16Features`` + ``lpips_style_distance``: VGG-16 in plain torch with torchvision's layer numbering; the
  "LPIPS-style" distance with no learned weights.
- ``DreamSimDistance`` (``embedding_backend = "dreamsim"``, the default): the ``dreamsim`` package (an optional
  extra) with weights from a local folder.
- ``EmbeddingDistance`` (``embedding_backend = "local"``, the named fallback): DreamSim-like, 1 - cosine of the
  concatenated normalised CLIP and DINO embeddings from local transformers folders (no DreamSim fine-tuning).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from scoft.config import TrainConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision ``vgg16().features``: conv layer indices per stage; a max-pool follows each stage.
VGG16_STAGES: tuple[tuple[int, ...], ...] = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
# conv1_2, conv2_2, conv3_3, conv4_3, conv5_3: the last conv of each stage, taken before its ReLU.
LPIPS_LAYERS: tuple[int, ...] = (2, 7, 14, 21, 28)


class Backbone(Protocol):
    def features(self, images: Tensor) -> Any: ...

    def compare(self, fa: Any, fb: Any) -> Tensor: ...


def imagenet_normalize(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Map images in [-1, 1] to [0, 1] and normalise per channel (differentiable)."""
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return ((images + 1) / 2 - m) / s


def _strip_features_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            continue
        out[key.removeprefix("features.")] = value
    return out


class VGG16Features(nn.Module):
    """VGG-16 convolutional trunk with torchvision's layer numbering (``features.{i}.weight``).

    Channel widths come from the state dict, so a real torchvision ``vgg16`` state dict loads, as does a narrower
    one of the same shape pattern. ``forward`` returns the pre-ReLU outputs of ``LPIPS_LAYERS``.
    """

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512, 512)) -> None:
        super().__init__()
        if len(widths) != len(VGG16_STAGES):
            raise ValueError(f"VGG-16 has {len(VGG16_STAGES)} stages, got widths {widths}")
        self.widths = tuple(widths)
        layers: dict[str, nn.Module] = {}
        in_ch = 3
        for width, stage in zip(widths, VGG16_STAGES, strict=True):
            for index in stage:
                layers[str(index)] = nn.Conv2d(in_ch, width, kernel_size=3, padding=1)
                in_ch = width
        self.features = nn.ModuleDict(layers)

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> VGG16Features:
        state = _strip_features_prefix(state)
        try:
            widths = tuple(int(state[f"{stage[0]}.weight"].shape[0]) for stage in VGG16_STAGES)
        except KeyError as exc:
            raise ValueError(f"not a VGG-16 features state dict: missing {exc.args[0]!r}") from None
        model = cls(widths)
        model.features.load_state_dict(state, strict=True)
        return model

    @classmethod
    def from_file(cls, path: str | Path) -> VGG16Features:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VGG-16 weights not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        return cls.from_state_dict(state)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs: list[Tensor] = []
        last = LPIPS_LAYERS[-1]
        for stage_no, stage in enumerate(VGG16_STAGES):
            if stage_no > 0:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
            for index in stage:
                x = self.features[str(index)](x)
                if index in LPIPS_LAYERS:
                    outputs.append(x)
                if index == last:
                    return outputs
                x = F.relu(x)
        return outputs


def _channel_normalize(f: Tensor, eps: float = 1e-10) -> Tensor:
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_style_from_features(fa: list[Tensor], fb: list[Tensor]) -> Tensor:
    """Per-row distance: channel-normalised features, squared difference summed over channels, mean over space,
    summed over layers."""
    total = None
    for a, b in zip(fa, fb, strict=True):
        d = (_channel_normalize(a.float()) - _channel_normalize(b.float())).pow(2).sum(dim=1).mean(dim=(1, 2))
        total = d if total is None else total + d
    assert total is not None
    return total


def lpips_style_distance(vgg: VGG16Features, x: Tensor, y: Tensor) -> Tensor:
    """LPIPS-style distance between images in [-1, 1] (N x 3 x H x W each); one value per row, no learned weights."""
    return lpips_style_from_features(_vgg_features(vgg, x), _vgg_features(vgg, y))


def _vgg_features(vgg: VGG16Features, images: Tensor) -> list[Tensor]:
    dtype = next(vgg.parameters()).dtype
    return vgg(imagenet_normalize(images.to(dtype), IMAGENET_MEAN, IMAGENET_STD))


class VGGDistance:
    """``Backbone`` wrapper of the LPIPS-style VGG-16 distance."""

    def __init__(self, vgg: VGG16Features) -> None:
        self.vgg = vgg

    def features(self, images: Tensor) -> list[Tensor]:
        return _vgg_features(self.vgg, images)

    def compare(self, fa: list[Tensor], fb: list[Tensor]) -> Tensor:
        return lpips_style_from_features(fa, fb)


def _read_preprocessing(folder: Path) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...]]:
    """Input size, mean and std from a transformers ``preprocessor_config.json``."""
    cfg_path = folder / "preprocessor_config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no preprocessor_config.json in {folder}")
    cfg = json.loads(cfg_path.read_text())
    size: Any = cfg.get("crop_size") if cfg.get("do_center_crop") and cfg.get("crop_size") else cfg.get("size")
    if isinstance(size, int):
        hw = (size, size)
    elif isinstance(size, dict) and "height" in size:
        hw = (int(size["height"]), int(size["width"]))
    elif isinstance(size, dict) and "shortest_edge" in size:
        hw = (int(size["shortest_edge"]),) * 2
    else:
        raise ValueError(f"cannot read the input size from {cfg_path}")
    mean = tuple(cfg.get("image_mean", IMAGENET_MEAN))
    std = tuple(cfg.get("image_std", IMAGENET_STD))
    return hw, mean, std


class ImageEncoder(nn.Module):
    """One transformers vision model plus its preprocessing as differentiable torch ops."""

    def __init__(self, model: nn.Module, size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        self.size = size
        self.mean = mean
        self.std = std

    def forward(self, images: Tensor) -> Tensor:
        dtype = next(self.model.parameters()).dtype
        x = images.to(dtype)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x.float(), size=self.size, mode="bicubic", align_corners=False, antialias=True).to(dtype)
        out = self.model(pixel_values=imagenet_normalize(x, self.mean, self.std))
        embeds = getattr(out, "image_embeds", None)
        if embeds is None:
            embeds = out.last_hidden_state[:, 0]
        return F.normalize(embeds.float(), dim=-1)


class EmbeddingDistance(nn.Module):
    """DreamSim-like distance from local CLIP and DINO folders: 1 - cosine of concatenated normalised embeddings.

    CLIP uses ``CLIPVisionModelWithProjection`` (``image_embeds``), DINO any ``AutoModel`` ViT (the CLS token).
    """

    def __init__(self, encoders: list[ImageEncoder]) -> None:
        super().__init__()
        if not encoders:
            raise ValueError("EmbeddingDistance needs at least one encoder")
        self.encoders = nn.ModuleList(encoders)

    @classmethod
    def from_folders(
        cls,
        clip_dir: str | Path | None,
        dino_dir: str | Path | None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> EmbeddingDistance:
        from transformers import AutoModel, CLIPVisionModelWithProjection

        encoders = []
        for folder, loader in ((clip_dir, CLIPVisionModelWithProjection), (dino_dir, AutoModel)):
            if folder is None:
                continue
            folder = Path(folder)
            if not folder.is_dir():
                raise FileNotFoundError(f"backbone folder not found: {folder}")
            size, mean, std = _read_preprocessing(folder)
            model = loader.from_pretrained(folder)
            encoders.append(ImageEncoder(model, size, mean, std))
        return freeze(cls(encoders), device, dtype)

    def embed(self, images: Tensor) -> Tensor:
        return F.normalize(torch.cat([enc(images) for enc in self.encoders], dim=-1), dim=-1)

    def features(self, images: Tensor) -> Tensor:
        return self.embed(images)

    def compare(self, fa: Tensor, fb: Tensor) -> Tensor:
        return 1 - (fa * fb).sum(dim=-1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.compare(self.embed(x), self.embed(y))


DREAMSIM_VERSION = "0.2.1"
DREAMSIM_SIZE = 224
# what dreamsim(pretrained=True, dreamsim_type="ensemble", cache_dir=DIR) reads, so it never downloads: the files of
# its ensemble checkpoint zip, and torch.hub's cache of the DINO ViT-B/16 code and weights (it sets the hub dir to DIR)
DREAMSIM_FILES: tuple[str, ...] = (
    "dino_vitb16_pretrain.pth",
    "clip_vitb16_pretrain.pth.tar",
    "open_clip_vitb16_pretrain.pth.tar",
    "ensemble_lora/adapter_config.json",
    "facebookresearch_dino_main/hubconf.py",
    "checkpoints/dino_vitbase16_pretrain.pth",
)
DREAMSIM_ADAPTER_WEIGHTS = ("ensemble_lora/adapter_model.safetensors", "ensemble_lora/adapter_model.bin")


class BackboneError(ValueError):
    """A backbone that cannot be built from what is installed and in the backbone folder (one-line message)."""


def missing_dreamsim_files(folder: Path) -> list[str]:
    missing = [name for name in DREAMSIM_FILES if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in DREAMSIM_ADAPTER_WEIGHTS):
        missing.append(" or ".join(DREAMSIM_ADAPTER_WEIGHTS))
    return missing


def _import_dreamsim() -> Any:
    from dreamsim import dreamsim

    return dreamsim


class DreamSimDistance:
    """The ``dreamsim`` package's ensemble (DINO + CLIP + OpenCLIP ViT-B/16), the authors' contrastive backbone.

    Weights come only from ``folder`` (checked before the package is asked for them, so it never downloads). Images
    in [-1, 1] are mapped to [0, 1] and resized to 224 x 224 (bicubic, antialiased; differentiable), as DreamSim's
    own preprocessing expects; the distance is 1 - cosine of the embeddings.
    """

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu") -> None:
        folder = Path(folder)
        try:
            dreamsim = _import_dreamsim()
        except ImportError as exc:
            raise BackboneError(
                f"embedding_backend = 'dreamsim' needs the dreamsim package (import failed: {exc}): install "
                f"dreamsim=={DREAMSIM_VERSION} (MIT; it needs torchvision, open-clip-torch and timm, so install a "
                "torchvision build that matches your torch first), e.g. pip install -c constraints.txt -e "
                "'.[dreamsim]'; or set embedding_backend = 'local' for the CLIP + DINO fallback"
            ) from None
        missing = missing_dreamsim_files(folder)
        if missing:
            raise BackboneError(
                f"embedding_backend = 'dreamsim' needs its weights in {folder}: missing {', '.join(missing)} "
                f"(unzip dreamsim {DREAMSIM_VERSION}'s dreamsim_ensemble_checkpoint.zip there, and copy torch.hub's "
                "facebookresearch_dino_main/ and checkpoints/dino_vitbase16_pretrain.pth from a hub cache)"
            )
        self.model, _ = dreamsim(
            pretrained=True, device=str(device), cache_dir=str(folder), normalize_embeds=True, dreamsim_type="ensemble"
        )
        freeze(self.model, device, torch.float32)

    def features(self, images: Tensor) -> Tensor:
        x = (images.float() + 1) / 2
        if tuple(x.shape[-2:]) != (DREAMSIM_SIZE, DREAMSIM_SIZE):
            size = (DREAMSIM_SIZE, DREAMSIM_SIZE)
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        return F.normalize(self.model.embed(x).float(), dim=-1)

    def compare(self, fa: Tensor, fb: Tensor) -> Tensor:
        return 1 - (fa * fb).sum(dim=-1)


def freeze(module: Any, device: torch.device | str, dtype: torch.dtype) -> Any:
    module.to(device=device, dtype=dtype)
    module.eval()
    module.requires_grad_(False)
    return module


@dataclass
class Backbones:
    """The distances a run needs, keyed ``vgg`` and ``embedding`` (absent when the variant does not use them)."""

    distances: dict[str, Backbone]

    def get(self, name: str) -> Backbone:
        if name not in self.distances:
            raise KeyError(f"backbone {name!r} was not built (built: {sorted(self.distances)})")
        return self.distances[name]


def build_backbones(
    config: TrainConfig,
    backbone_dir: str | Path | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Backbones:
    """Build the backbones the config's variant needs from ``backbone_dir`` (``vgg16.safetensors``, ``clip/``,
    ``dino/``, or ``dreamsim/`` for the dreamsim package)."""
    needed = config.distances_needed()
    if needed and backbone_dir is None:
        raise ValueError(f"variant {config.variant!r} needs perceptual backbones: pass --backbone DIR")
    root = Path(backbone_dir) if backbone_dir is not None else Path()
    distances: dict[str, Backbone] = {}
    if "vgg" in needed:
        candidates = [root / "vgg16.safetensors", root / "vgg16.pth"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"no VGG-16 weights in {root} (expected vgg16.safetensors or vgg16.pth)")
        distances["vgg"] = VGGDistance(freeze(VGG16Features.from_file(path), device, dtype))
    if "embedding" in needed:
        if config.embedding_backend == "dreamsim":
            distances["embedding"] = DreamSimDistance(root / "dreamsim", device)
        else:
            clip_dir, dino_dir = root / "clip", root / "dino"
            if not clip_dir.is_dir() and not dino_dir.is_dir():
                raise FileNotFoundError(
                    f"no clip/ or dino/ folder in {root} for embedding_backend = 'local' (the CLIP + DINO fallback)"
                )
            distances["embedding"] = EmbeddingDistance.from_folders(
                clip_dir if clip_dir.is_dir() else None, dino_dir if dino_dir.is_dir() else None, device, dtype
            )
    return Backbones(distances)
