"""Tiny random offline models (``python -m scoft tiny --out DIR``) for tests and the demo.

Everything is built from configs with random weights; nothing is downloaded. The layout mirrors what a user
provides for real runs:

- ``DIR/sd``: a diffusers ``StableDiffusionPipeline`` folder (64 px images, latents image/8 like SD).
- ``DIR/controlnet``: a ``ControlNetModel`` made from the tiny UNet.
- ``DIR/depth``: a tiny DPT depth-estimation model and its image processor.
- ``DIR/captioner``: a tiny BLIP captioner and processor (WordPiece tokenizer written by code).
- ``DIR/backbone``: ``vgg16.safetensors`` (torchvision ``features`` naming, small widths), ``clip/`` and ``dino/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTS = ("sd", "controlnet", "depth", "captioner", "backbone")
IMAGE_SIZE = 64
TEXT_MAX_LENGTH = 77
# torchvision VGG-16 ``features`` conv indices, grouped by stage (a max-pool follows each stage).
VGG16_STAGES: tuple[tuple[int, ...], ...] = ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28))
VGG16_TINY_WIDTHS: tuple[int, ...] = (8, 16, 32, 64, 64)
CAPTION_WORDS = [
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "with",
    "and",
    "at",
    "near",
    "by",
    "photo",
    "picture",
    "image",
    "painting",
    "view",
    "close",
    "up",
    "people",
    "person",
    "man",
    "woman",
    "child",
    "group",
    "building",
    "house",
    "temple",
    "street",
    "city",
    "market",
    "food",
    "dish",
    "plate",
    "bowl",
    "table",
    "dress",
    "clothes",
    "dancing",
    "dance",
    "red",
    "blue",
    "green",
    "yellow",
    "white",
    "black",
    "orange",
    "purple",
    "brown",
    "colorful",
    "traditional",
    "old",
    "new",
    "large",
    "small",
    "sky",
    "tree",
    "water",
    "circle",
    "square",
    "triangle",
    "pattern",
    "background",
    "front",
    "standing",
    "sitting",
]


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable-character table of byte-level BPE (as in GPT-2 and CLIP)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_clip_tokenizer_files(folder: Path) -> Path:
    """Write a byte-level CLIP vocabulary (514 ids, no merges) that ``CLIPTokenizer.from_pretrained`` loads."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder


def write_wordpiece_vocab(path: Path) -> list[str]:
    """Write a small BERT WordPiece vocabulary (special tokens, caption words, letters and ``##`` pieces)."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    punct = list(".,!?'-:;()")
    tokens = specials + list(dict.fromkeys(CAPTION_WORDS)) + letters + punct + ["##" + c for c in letters]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return tokens


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def build_sd(out: Path, *, seed: int = 0) -> Path:
    """A tiny StableDiffusionPipeline folder: 64 px, VAE factor 8, CLIP text 32 x 2, DDPM 1000 epsilon."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    _seed(seed)
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=IMAGE_SIZE,
        scaling_factor=0.18215,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(
            write_clip_tokenizer_files(Path(tmp)), model_max_length=TEXT_MAX_LENGTH
        )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=TEXT_MAX_LENGTH,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        clip_sample=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out)
    return out


def build_controlnet(out: Path, sd_dir: Path, *, seed: int = 0) -> Path:
    """A ControlNet made from the tiny UNet (conditioning image at full resolution, downsampled by 8)."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    _seed(seed + 1)
    unet = UNet2DConditionModel.from_pretrained(sd_dir, subfolder="unet")
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32, 32))
    controlnet.save_pretrained(out)
    return out


def build_depth(out: Path, *, seed: int = 0) -> Path:
    """A tiny DPT depth estimator (ViT 32 x 4 layers, 32 px input) with its image processor."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    _seed(seed + 2)
    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_in_index=-1,
        reassemble_factors=[4, 2, 1, 0.5],
        is_hybrid=False,
    )
    DPTForDepthEstimation(config).save_pretrained(out)
    DPTImageProcessor(
        size={"height": 32, "width": 32}, keep_aspect_ratio=False, ensure_multiple_of=8, do_pad=False
    ).save_pretrained(out)
    return out


def build_captioner(out: Path, *, seed: int = 0) -> Path:
    """A tiny BLIP captioner (vision 32 x 2, text decoder 32 x 2) with a small WordPiece tokenizer."""
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    _seed(seed + 3)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        tokens = write_wordpiece_vocab(vocab_file)
        tokenizer = BertTokenizerFast.from_pretrained(tmp, do_lower_case=True, model_max_length=40)
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    ids = {tok: i for i, tok in enumerate(tokens)}
    config = BlipConfig(
        text_config={
            "vocab_size": len(tokens),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 40,
            "encoder_hidden_size": 32,
            "bos_token_id": ids["[DEC]"],
            "eos_token_id": ids["[SEP]"],
            "sep_token_id": ids["[SEP]"],
            "pad_token_id": ids["[PAD]"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    model = BlipForConditionalGeneration(config)
    model.save_pretrained(out)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


def vgg16_tiny_state_dict(widths: tuple[int, ...] = VGG16_TINY_WIDTHS, *, seed: int = 0) -> dict[str, Any]:
    """A random VGG-16 ``features`` state dict in torchvision key naming, with the given per-stage widths."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state: dict[str, Any] = {}
    in_ch = 3
    for width, stage in zip(widths, VGG16_STAGES, strict=True):
        for index in stage:
            fan_in = in_ch * 9
            weight = torch.randn(width, in_ch, 3, 3, generator=gen) * (2.0 / fan_in) ** 0.5
            state[f"features.{index}.weight"] = weight.contiguous()
            state[f"features.{index}.bias"] = torch.zeros(width)
            in_ch = width
    return state


def build_backbone(out: Path, *, seed: int = 0) -> Path:
    """Perceptual backbones: ``vgg16.safetensors``, ``clip/`` (vision + projection) and ``dino/`` (ViT)."""
    from safetensors.torch import save_file
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    out.mkdir(parents=True, exist_ok=True)
    save_file(vgg16_tiny_state_dict(seed=seed + 4), str(out / "vgg16.safetensors"))
    _seed(seed + 5)
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=16,
        )
    )
    clip.save_pretrained(out / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out / "clip")
    _seed(seed + 6)
    dino = ViTModel(
        ViTConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        )
    )
    dino.save_pretrained(out / "dino")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out / "dino")
    return out


def _is_built(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def build_tiny(out: Path, *, seed: int = 0, force: bool = False, parts: tuple[str, ...] = PARTS) -> dict[str, Path]:
    """Build the tiny models under ``out`` and return ``{part: path}``; existing parts are kept unless ``force``."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown tiny model parts: {sorted(unknown)} (choose from {list(PARTS)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    builders: dict[str, Callable[[Path], Path]] = {
        "sd": lambda p: build_sd(p, seed=seed),
        "controlnet": lambda p: build_controlnet(p, out / "sd", seed=seed),
        "depth": lambda p: build_depth(p, seed=seed),
        "captioner": lambda p: build_captioner(p, seed=seed),
        "backbone": lambda p: build_backbone(p, seed=seed),
    }
    order = [p for p in PARTS if p in parts or (p == "sd" and "controlnet" in parts)]
    paths: dict[str, Path] = {}
    for part in order:
        path = out / part
        if force and path.exists():
            shutil.rmtree(path)
        if not _is_built(path):
            tmp = out / f".{part}.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            builders[part](tmp)
            tmp.rename(path)
        if part in parts:
            paths[part] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scoft tiny", description="Build tiny random offline models for tests and the demo."
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to build into")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    parser.add_argument("--force", action="store_true", help="rebuild parts that already exist")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts to build")
    args = parser.parse_args(argv)
    paths = build_tiny(args.out, seed=args.seed, force=args.force, parts=tuple(args.parts))
    for name, path in paths.items():
        print(f"{name:<11} {path}")
    return 0
