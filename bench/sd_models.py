"""Random-weight models in SD-1.5 shapes (UNet, VAE, CLIP-L text encoder) and ViT-B/16 + VGG-16 backbones, for benches.

They cost what the real ones cost; built on any device, including ``meta`` (shapes only, for FLOP counts).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from scoft.config import TrainConfig
from scoft.features import Backbones, EmbeddingDistance, ImageEncoder, VGG16Features, VGGDistance, freeze
from scoft.train import Models

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
