"""Perceptual backbones: VGG-16 with torchvision numbering, the LPIPS-style and embedding distances."""

from pathlib import Path

import pytest
import torch

from scoft.config import TrainConfig
from scoft.features import (
    EmbeddingDistance,
    VGG16Features,
    build_backbones,
    imagenet_normalize,
    lpips_style_distance,
    lpips_style_from_features,
)
from scoft.tiny import vgg16_tiny_state_dict


def full_width_vgg16_state() -> dict[str, torch.Tensor]:
    """Random weights in the exact shapes of torchvision's vgg16().features (plus a classifier key to ignore)."""
    return {**vgg16_tiny_state_dict((64, 128, 256, 512, 512)), "classifier.0.weight": torch.zeros(1)}


def test_vgg16_loads_a_torchvision_shaped_state_dict() -> None:
    state = full_width_vgg16_state()
    vgg = VGG16Features.from_state_dict(state)
    assert vgg.widths == (64, 128, 256, 512, 512)
    assert torch.equal(vgg.features["28"].weight, state["features.28.weight"])
    feats = vgg(torch.randn(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]


def test_vgg16_features_are_taken_before_relu() -> None:
    vgg = VGG16Features.from_state_dict(vgg16_tiny_state_dict())
    feats = vgg(torch.randn(2, 3, 32, 32))
    assert len(feats) == 5
    assert all((f < 0).any() for f in feats)
    # conv1_2 is layer 2 applied to relu(layer 0)
    x = torch.randn(1, 3, 16, 16)
    manual = vgg.features["2"](torch.relu(vgg.features["0"](x)))
    assert torch.allclose(vgg(x)[0], manual)


def test_vgg16_rejects_a_foreign_state_dict() -> None:
    with pytest.raises(ValueError, match="VGG-16"):
        VGG16Features.from_state_dict({"conv.weight": torch.zeros(1)})
    state = vgg16_tiny_state_dict()
    state["features.3.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError):
        VGG16Features.from_state_dict(state)


def test_lpips_style_from_features_by_hand() -> None:
    a = [torch.tensor([3.0, 4.0]).view(1, 2, 1, 1), torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])]
    b = [torch.tensor([0.0, 1.0]).view(1, 2, 1, 1), torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])]
    # layer 1: (0.6, 0.8) vs (0, 1): 0.36 + 0.04 = 0.4
    # layer 2 (1 x 2 pixels): pixel 0 (1, 0) vs (0, 1): 2; pixel 1 (1, 0) vs (1, 0): 0; mean 1
    assert lpips_style_from_features(a, b).item() == pytest.approx(1.4)


def test_lpips_style_distance_properties() -> None:
    vgg = VGG16Features.from_state_dict(vgg16_tiny_state_dict())
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    y = torch.rand(3, 3, 32, 32) * 2 - 1
    d = lpips_style_distance(vgg, x, y)
    assert d.shape == (3,)
    assert (d > 0).all()
    assert torch.allclose(lpips_style_distance(vgg, x, x), torch.zeros(3), atol=1e-6)
    assert torch.allclose(d, lpips_style_distance(vgg, y, x))


def test_imagenet_normalisation_of_minus_one_to_one_inputs() -> None:
    x = torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = imagenet_normalize(x, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(out[0, 0, 0], torch.tensor([-2.0, 2.0]))


def test_embedding_distance_preprocessing_matches_the_image_processor(tiny_models: dict[str, Path]) -> None:
    from PIL import Image
    from transformers import CLIPImageProcessor

    folder = tiny_models["backbone"] / "clip"
    dist = EmbeddingDistance.from_folders(folder, None)
    pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8)
    processed = CLIPImageProcessor.from_pretrained(folder)(images=Image.fromarray(pixels.numpy()), return_tensors="pt")
    x = pixels.permute(2, 0, 1)[None].float() / 127.5 - 1
    encoder = dist.encoders[0]
    ours = imagenet_normalize(x, encoder.mean, encoder.std)
    assert torch.allclose(ours, processed["pixel_values"], atol=1e-5)
    ref = encoder.model(pixel_values=processed["pixel_values"]).image_embeds
    assert torch.allclose(dist.embed(x), torch.nn.functional.normalize(ref, dim=-1), atol=1e-5)


def test_embedding_distance_is_cosine_and_differentiable(tiny_models: dict[str, Path]) -> None:
    root = tiny_models["backbone"]
    dist = EmbeddingDistance.from_folders(root / "clip", root / "dino")
    assert len(dist.encoders) == 2
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    d = dist(x, y)
    assert d.shape == (2,)
    assert ((d >= 0) & (d <= 2)).all()
    assert torch.allclose(dist(y, y), torch.zeros(2), atol=1e-5)
    d.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in dist.parameters())
    # 1 - cosine of the concatenation of the per-model normalised embeddings
    parts_x = [enc(x.detach()) for enc in dist.encoders]
    parts_y = [enc(y) for enc in dist.encoders]
    manual = 1 - sum((a * b).sum(-1) for a, b in zip(parts_x, parts_y, strict=True)) / 2
    assert torch.allclose(d.detach(), manual, atol=1e-5)


def test_build_backbones_builds_what_the_variant_needs(tiny_models: dict[str, Path]) -> None:
    root = tiny_models["backbone"]
    assert build_backbones(TrainConfig(variant="m"), None).distances == {}
    # mp keeps the contrastive backbone's pull toward the positive, so it needs both distances, like mpc
    for variant in ("mp", "mpc"):
        built = build_backbones(TrainConfig(variant=variant, embedding_backend="local"), root, "cpu", torch.float32)
        assert set(built.distances) == {"vgg", "embedding"}
        assert isinstance(built.get("embedding"), EmbeddingDistance)
    vgg = built.get("vgg")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert vgg.compare(vgg.features(x), vgg.features(x)).abs().max() < 1e-6
    only_vgg = build_backbones(TrainConfig(variant="mp", contrastive_distance="vgg"), root)
    with pytest.raises(KeyError, match="embedding"):
        only_vgg.get("embedding")


def test_build_backbones_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--backbone"):
        build_backbones(TrainConfig(variant="mpc"), None)
    with pytest.raises(FileNotFoundError, match="VGG-16"):
        build_backbones(TrainConfig(variant="mp"), tmp_path)
    with pytest.raises(FileNotFoundError, match="clip"):
        build_backbones(
            TrainConfig(
                variant="mpc",
                contrastive_distance="embedding",
                perceptual_distance="embedding",
                embedding_backend="local",
            ),
            tmp_path,
        )
