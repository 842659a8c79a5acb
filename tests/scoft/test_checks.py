"""What a careless run gets before any model loads: one line naming the problem, no traceback, no torch import."""

import dataclasses
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from scoft import checks
from scoft.data import read_metadata, synthesize_ccub, write_metadata

ROOT = Path(__file__).resolve().parents[2]
FAST = [
    "--resolution",
    "64",
    "--max-steps",
    "1",
    "--no-progress",
]


def run_scoft(*argv: str) -> tuple[int, str, bool]:
    """``python -m scoft ARGV`` in a fresh interpreter: (exit status, stderr, whether torch got imported)."""
    code = (
        "import sys; from scoft.__main__ import main; rc = main(sys.argv[1:]); "
        "print('TORCH', 'torch' in sys.modules); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    return proc.returncode, proc.stderr, "TORCH True" in proc.stdout


def assert_one_line(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def data(tmp_path: Path) -> Path:
    synthesize_ccub(tmp_path / "data", culture="korea", n_images=2, resolution=72, seed=0)
    return tmp_path / "data"


def train_args(base: Path, data: Path, out: Path, variant: str = "ldm") -> list[str]:
    return ["train", "--base", str(base), "--data", str(data), "--variant", variant, "--out", str(out)]


def test_unknown_command_names_itself() -> None:
    rc, err, _ = run_scoft("trian", "--base", "x")
    assert rc == 2
    assert_one_line(err, "unknown command 'trian'", "train")


def test_missing_base_fails_before_torch_loads(data: Path, tmp_path: Path) -> None:
    rc, err, torch_loaded = run_scoft(*train_args(tmp_path / "nope", data, tmp_path / "out"))
    assert rc == 2 and not torch_loaded
    assert_one_line(err, "--base folder not found", str(tmp_path / "nope"))
    assert not (tmp_path / "out").exists()


def test_corrupt_image_is_named_before_any_model_loads(tiny_models: dict[str, Path], data: Path, tmp_path: Path):
    victim = data / read_metadata(data)[1].file_name
    victim.write_bytes(victim.read_bytes()[:60])  # a truncated PNG
    rc, err, torch_loaded = run_scoft(*train_args(tiny_models["sd"], data, tmp_path / "out"), *FAST)
    assert rc == 2 and not torch_loaded
    assert_one_line(err, str(victim), "does not decode")


def copy_sd(tiny_models: dict[str, Path], dest: Path) -> Path:
    return Path(shutil.copytree(tiny_models["sd"], dest))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda sd: (sd / "model_index.json").unlink(), "not a diffusers pipeline folder (no model_index.json)"),
        (lambda sd: shutil.rmtree(sd / "unet"), "has no UNet (unet/config.json missing)"),
        (lambda sd: (sd / "vae" / "diffusion_pytorch_model.safetensors").unlink(), "no VAE weights"),
    ],
)
def test_wrong_model_folder_is_one_clear_line(tiny_models, data, tmp_path, damage, message) -> None:
    sd = copy_sd(tiny_models, tmp_path / "sd")
    damage(sd)
    rc, err, torch_loaded = run_scoft(*train_args(sd, data, tmp_path / "out"), *FAST)
    assert rc == 2 and not torch_loaded
    assert_one_line(err, message, str(sd))


def test_fp16_variant_folder_asks_for_the_flag_and_trains_with_it(tiny_models, data, tmp_path, capsys) -> None:
    from scoft.train import main

    sd = copy_sd(tiny_models, tmp_path / "sd")
    for sub, name in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ):
        (sd / sub / f"{name}.safetensors").rename(sd / sub / f"{name}.fp16.safetensors")
    argv = train_args(sd, data, tmp_path / "out")[1:] + FAST
    assert main(argv) == 2
    assert_one_line(capsys.readouterr().err, "fp16-variant weights", "--weights-variant fp16")
    assert main([*argv, "--weights-variant", "fp16"]) == 0
    assert (tmp_path / "out" / "pytorch_lora_weights.safetensors").is_file()


def test_existing_output_folder_needs_resume_or_overwrite(tiny_models, data, tmp_path, capsys) -> None:
    from scoft.train import main

    out = tmp_path / "out"
    argv = train_args(tiny_models["sd"], data, out)[1:] + FAST
    assert main(argv) == 0
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    before = (out / "train_log.csv").read_text()
    assert main(argv) == 2
    assert_one_line(capsys.readouterr().err, str(out), "--resume", "--overwrite")
    assert (out / "train_log.csv").read_text() == before
    old_checkpoint = out / "checkpoint-1"
    assert old_checkpoint.is_dir()
    (out / "checkpoint-7").mkdir()  # a checkpoint of the earlier run that the new one would not reach
    assert main([*argv, "--overwrite", "--seed", "5"]) == 0
    assert not (out / "checkpoint-7").exists()
    assert (out / "notes.txt").read_text() == "mine"  # only what training writes is replaced
    assert tomllib.loads((out / "config.toml").read_text())["train"]["seed"] == 5
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--resume", "--overwrite"])
    assert exit_info.value.code == 2
    assert "not allowed with argument --resume" in capsys.readouterr().err


def test_cli_resolution_lr_and_rank_override_the_toml(tiny_models, data, tmp_path) -> None:
    from scoft.train import main

    cfg = tmp_path / "train.toml"
    cfg.write_text("[train]\nresolution = 32\nlearning_rate = 0.5\nlora_rank = 2\nmixed_precision = 'no'\n")
    out = tmp_path / "out"
    argv = train_args(tiny_models["sd"], data, out)[1:]
    argv += ["--config", str(cfg), "--max-steps", "1", "--no-progress", "--resolution", "64", "--lr", "0.002"]
    assert main([*argv, "--rank", "3"]) == 0
    written = tomllib.loads((out / "config.toml").read_text())["train"]
    assert (written["resolution"], written["learning_rate"], written["lora_rank"]) == (64, 0.002, 3)
    assert written["lora_alpha"] == 3  # alpha follows --rank unless the config sets it
    from safetensors.torch import load_file

    weights = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert {v.shape[0] for k, v in weights.items() if "lora_A" in k or "lora.down" in k} == {3}


def test_missing_blip_text_is_refused_for_the_variants_that_need_it(tiny_models, data, tmp_path, capsys) -> None:
    from scoft.train import main

    records = read_metadata(data)
    write_metadata(data, [dataclasses.replace(records[0], blip_text=""), *records[1:]])
    base = train_args(tiny_models["sd"], data, tmp_path / "m")[1:] + FAST
    assert main([*base[:5], "m", *base[6:]]) == 2
    assert_one_line(capsys.readouterr().err, "1 record(s)", "blip_text", "scoft caption", "--caption-with")
    assert main(train_args(tiny_models["sd"], data, tmp_path / "ldm")[1:] + FAST) == 0  # ldm needs no blip_text


def test_caption_on_request_fills_blip_text_before_training(tiny_models, data, tmp_path) -> None:
    from scoft.train import main

    records = read_metadata(data)
    write_metadata(data, [dataclasses.replace(r, blip_text="") for r in records])
    argv = train_args(tiny_models["sd"], data, tmp_path / "m", variant="m")[1:] + FAST
    assert main([*argv, "--caption-with", str(tiny_models["captioner"])]) == 0
    assert all(r.blip_text.strip() for r in read_metadata(data))


def test_record_and_negative_checks(data: Path) -> None:
    records = read_metadata(data)
    with pytest.raises(checks.CheckError, match="record 2 .*empty text"):
        checks.check_records(
            [records[0], dataclasses.replace(records[1], text=" ")], data, needs_blip=False, needs_negatives=False
        )
    with pytest.raises(checks.CheckError, match="needs negatives"):
        checks.check_records(records, data, needs_blip=False, needs_negatives=True)
    with_missing = [dataclasses.replace(records[0], negative_imgpath=("negatives/gone.png",)), records[1]]
    with pytest.raises(checks.CheckError, match="1 image file.*gone.png"):
        checks.check_images(with_missing, data, negatives=None, progress=False)
    assert checks.check_images(with_missing, data, negatives=0, progress=False) == 2  # unused negatives: unread
    (data / "metadata.jsonl").write_text(json.dumps({"file_name": 3}) + "\n")
    with pytest.raises(ValueError, match="metadata.jsonl:1"):
        checks.check_data(data, needs_blip=False, needs_negatives=False, negatives=0, progress=False)


def test_model_folder_variants_are_reported(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    checks.check_model_folder(tiny_models["sd"])
    with pytest.raises(checks.CheckError, match="no fp16-variant UNet weights.*leave out --weights-variant"):
        checks.check_model_folder(tiny_models["sd"], "fp16")
    with pytest.raises(checks.CheckError, match="--base folder not found"):
        checks.check_model_folder(tmp_path / "none")
