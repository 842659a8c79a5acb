"""The DreamSim adapter against a stand-in ``dreamsim`` package with the same interface (the real one needs
torchvision, which this environment does not install): input range, resizing, gradient, 1 - cosine, local weights."""

import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from scoft.config import TrainConfig
from scoft.features import (
    DREAMSIM_ADAPTER_WEIGHTS,
    DREAMSIM_FILES,
    BackboneError,
    DreamSimDistance,
    build_backbones,
)


class StandInDreamSim(torch.nn.Module):
    """``dreamsim``'s PerceptualModel interface: ``embed(img)`` of N x 3 x 224 x 224 images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3 * 8 * 8, 16)
        self.seen: list[torch.Tensor] = []

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        assert img.shape[-2:] == (224, 224), img.shape
        self.seen.append(img.detach().clone())
        return self.proj(F.adaptive_avg_pool2d(img, 8).flatten(1))


@pytest.fixture
def fake_dreamsim(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    torch.manual_seed(0)
    model = StandInDreamSim()

    def dreamsim(**kwargs):
        calls.append(kwargs)
        return model, None

    module = types.ModuleType("dreamsim")
    module.dreamsim = dreamsim  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dreamsim", module)
    return calls


def place_weights(folder: Path) -> Path:
    for name in (*DREAMSIM_FILES, DREAMSIM_ADAPTER_WEIGHTS[0]):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")
    return folder


def test_adapter_maps_the_range_resizes_and_is_one_minus_cosine(fake_dreamsim, tmp_path: Path) -> None:
    dist = DreamSimDistance(place_weights(tmp_path), "cpu")
    assert fake_dreamsim == [
        {
            "pretrained": True,
            "device": "cpu",
            "cache_dir": str(tmp_path),
            "normalize_embeds": True,
            "dreamsim_type": "ensemble",
        }
    ]
    model = dist.model
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    x = (torch.rand(2, 3, 64, 48) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 3, 64, 48) * 2 - 1
    fx = dist.features(x)
    seen = model.seen[-1]
    want = F.interpolate((x.detach() + 1) / 2, size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
    assert torch.allclose(seen, want, atol=1e-6)
    assert seen.mean().item() == pytest.approx(((x.detach() + 1) / 2).mean().item(), abs=0.02)
    fy = dist.features(y)
    seen_y = model.seen[-1]
    d = dist.compare(fx, fy)
    by_hand = 1 - F.cosine_similarity(model.embed(want), model.embed(seen_y), dim=-1)
    assert torch.allclose(d.detach(), by_hand.detach(), atol=1e-5)
    assert torch.allclose(dist.compare(fy, fy), torch.zeros(2), atol=1e-6)
    d.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    # already 224 px: no resampling, only the range mapping
    z = torch.rand(1, 3, 224, 224) * 2 - 1
    dist.features(z)
    assert torch.allclose(model.seen[-1], (z + 1) / 2)


def test_missing_weights_name_every_file_and_nothing_is_downloaded(fake_dreamsim, tmp_path: Path) -> None:
    with pytest.raises(BackboneError) as err:
        DreamSimDistance(tmp_path, "cpu")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert all(name in message for name in DREAMSIM_FILES)
    assert "adapter_model" in message
    assert fake_dreamsim == []  # the package (which would download) was never asked


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "dreamsim", None)  # import fails
    with pytest.raises(BackboneError) as err:
        DreamSimDistance(place_weights(tmp_path), "cpu")
    message = str(err.value)
    assert "\n" not in message
    assert "dreamsim==0.2.1" in message and "torchvision" in message and "embedding_backend = 'local'" in message


def test_dreamsim_is_the_default_backend_and_reads_backbone_dreamsim(fake_dreamsim, tmp_path: Path) -> None:
    from scoft.tiny import vgg16_tiny_state_dict

    assert TrainConfig().embedding_backend == "dreamsim"
    from safetensors.torch import save_file

    save_file(vgg16_tiny_state_dict(), str(tmp_path / "vgg16.safetensors"))
    place_weights(tmp_path / "dreamsim")
    built = build_backbones(TrainConfig(variant="mp"), tmp_path)
    assert isinstance(built.get("embedding"), DreamSimDistance)
    assert fake_dreamsim[0]["cache_dir"] == str(tmp_path / "dreamsim")


def test_train_cli_without_dreamsim_fails_in_one_line(tiny_models, tmp_path: Path, monkeypatch, capsys) -> None:
    from scoft.data import synthesize_ccub
    from scoft.train import main

    monkeypatch.setitem(sys.modules, "dreamsim", None)
    data = tmp_path / "data"
    synthesize_ccub(data, culture="korea", n_images=2, resolution=64, seed=0)
    argv = ["--base", str(tiny_models["sd"]), "--data", str(data), "--variant", "mp", "--out", str(tmp_path / "o")]
    assert main([*argv, "--backbone", str(tiny_models["backbone"]), "--max-steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m scoft train: error: embedding_backend = 'dreamsim' needs the dreamsim package")
