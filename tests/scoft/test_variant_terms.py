"""Each variant's loss terms and weights, term by term, against the table in the method reference:

| variant | every micro-batch | chain micro-batches only |
| SCoFT+M | 0.7 L_LDM + 0.3 L_M | - |
| SCoFT+MP | 0.7 L_LDM + 0.3 L_M | + 0.05 D(x_hat, x+) + 0.01 L_vgg(x_hat, x+) |
| SCoFT+MPC | 0.7 L_LDM + 0.3 L_M | + 0.05 (D(x_hat, x+) - mean_k D(x_hat, x-_k)) + 0.01 L_vgg(x_hat, x+) |
(and plain LoRA fine-tuning, ``ldm``: L_LDM alone.)
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from scoft.config import TrainConfig
from scoft.data import synthesize_ccub, write_metadata
from scoft.features import Backbones

SETTINGS = {
    "resolution": 64,
    "train_batch_size": 2,
    "mixed_precision": "no",
    "lora_rank": 4,
    "lora_alpha": 4,
    "chain_length": 3,
    "embedding_backend": "local",
}
TABLE = {
    "ldm": ({"ldm": 1.0}, {"ldm": 1.0}),
    "m": ({"ldm": 0.7, "m": 0.3}, {"ldm": 0.7, "m": 0.3}),
    "mp": ({"ldm": 0.7, "m": 0.3}, {"ldm": 0.7, "m": 0.3, "c": 0.05, "p": 0.01}),
    "mpc": ({"ldm": 0.7, "m": 0.3}, {"ldm": 0.7, "m": 0.3, "c": 0.05, "p": 0.01}),
}


class Recording:
    """A stand-in backbone: features are the flattened image; records every batch of images it is given."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls: list[torch.Tensor] = []

    def features(self, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(images.detach().clone())
        return images.flatten(1).float()

    def compare(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        if self.kind == "vgg":
            return (fa - fb).pow(2).mean(-1)
        return 1 - F.cosine_similarity(fa, fb, dim=-1)


@pytest.fixture(scope="module")
def parts(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    from scoft.data import CCUBDataset, collate
    from scoft.train import load_models, prepare_models, tokenize

    folder = tmp_path_factory.mktemp("ccub")
    records = synthesize_ccub(folder, culture="korea", n_images=2, resolution=80, seed=0)
    rng = np.random.default_rng(0)
    (folder / "negatives").mkdir()
    with_neg = []
    for i, rec in enumerate(records):
        paths = [f"negatives/{i}_{k}.png" for k in range(2)]
        for rel in paths:
            Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(folder / rel)
        with_neg.append(dataclasses.replace(rec, negative_imgpath=tuple(paths)))
    write_metadata(folder, with_neg)
    models = load_models(tiny_models["sd"])
    torch.manual_seed(0)
    prepare_models(models, TrainConfig(**SETTINGS), torch.device("cpu"), torch.float32)
    with torch.no_grad():
        for name, p in models.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
        null = models.text_encoder(tokenize(models.tokenizer, [""]))[0]
    dataset = CCUBDataset(folder, resolution=64, tokenizer=models.tokenizer, max_negatives=2)
    return models, null, collate([dataset[0], dataset[1]])


def run_variant(parts, variant: str, chain: bool):
    from scoft.train import StepContext, micro_step_losses

    models, null, batch = parts
    cfg = TrainConfig(**SETTINGS, variant=variant)
    backbones = {"vgg": Recording("vgg"), "embedding": Recording("embedding")}
    ctx = StepContext(
        cfg, models, models.unet, models.unet, null, Backbones(dict(backbones)), torch.float32, torch.device("cpu")
    )
    terms = micro_step_losses(ctx, batch, torch.Generator().manual_seed(0), chain=chain)
    return cfg, terms, backbones, batch


@pytest.mark.parametrize("variant", ["ldm", "m", "mp", "mpc"])
@pytest.mark.parametrize("chain", [False, True])
def test_terms_and_weights_match_the_method_table(parts, variant: str, chain: bool) -> None:
    cfg, terms, backbones, batch = run_variant(parts, variant, chain and TrainConfig(variant=variant).uses_chain)
    plain, on_chain = TABLE[variant]
    weights = on_chain if chain else plain
    present = {k for k in ("ldm", "m", "p", "c") if terms[k] is not None}
    assert present == set(weights)
    assert {k: cfg.loss_weights()[k] for k in present} == weights
    expected = sum(w * terms[k] for k, w in weights.items())
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    if not chain or variant in ("ldm", "m"):
        assert all(not b.calls for b in backbones.values())
        return

    positive = batch["pixel_values"]
    vgg, emb = backbones["vgg"], backbones["embedding"]
    assert torch.equal(vgg.calls[0], positive) and torch.equal(emb.calls[0], positive)
    x_hat = vgg.calls[1]
    assert torch.equal(emb.calls[1], x_hat) and x_hat.shape == positive.shape
    # L_vgg (weight 0.01): the VGG distance to the positive
    assert terms["p"].item() == pytest.approx(vgg.compare(x_hat.flatten(1), positive.flatten(1)).mean().item())
    d_pos = emb.compare(x_hat.flatten(1), positive.flatten(1))
    if variant == "mp":
        # the DreamSim pull toward the positive (weight 0.05), and no negative is ever embedded
        assert len(emb.calls) == 2
        assert terms["c"].item() == pytest.approx(d_pos.mean().item(), rel=1e-6)
    else:
        negatives = batch["negative_pixel_values"]
        assert torch.equal(emb.calls[2], negatives.flatten(0, 1))
        d_neg = torch.stack(
            [emb.compare(x_hat.flatten(1), negatives[:, k].flatten(1)) for k in range(negatives.shape[1])], dim=1
        )
        assert terms["c"].item() == pytest.approx((d_pos - d_neg.mean(dim=1)).mean().item(), rel=1e-5)
    assert len(vgg.calls) == 2  # the VGG term never sees the negatives


def test_terms_carry_gradient_to_the_lora(parts) -> None:
    models = parts[0]
    _, terms, _, _ = run_variant(parts, "mp", chain=True)
    models.unet.zero_grad(set_to_none=True)
    terms["c"].backward()
    assert sum(p.grad.abs().sum() for n, p in models.unet.named_parameters() if p.grad is not None) > 0


def test_empty_generic_captions_are_refused_for_variants_with_l_m(tiny_models, tmp_path: Path, capsys) -> None:
    from scoft.train import _check_data, main

    synthesize_ccub(tmp_path, culture="korea", n_images=3, resolution=64, seed=0, with_blip_text=False)
    for variant in ("m", "mp", "mpc"):
        with pytest.raises(ValueError, match="blip_text") as err:
            _check_data(TrainConfig(variant=variant, max_negatives=0 if variant != "mpc" else 3), tmp_path)
        message = str(err.value)
        assert "3 record(s)" in message and "python -m scoft caption" in message and "\n" not in message
        names = [line.split('"file_name": "')[1].split('"')[0] for line in (tmp_path / "metadata.jsonl").open()]
        assert all(n in message for n in names)
    assert _check_data(TrainConfig(variant="ldm"), tmp_path)  # plain fine-tuning does not use blip_text
    argv = ["--base", str(tiny_models["sd"]), "--data", str(tmp_path), "--variant", "m", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "blip_text" in err_lines[0]
