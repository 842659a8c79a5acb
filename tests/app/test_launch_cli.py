"""``python -m app.rounds launch`` names every problem and exits non-zero; ``--reuse`` keeps an identical round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import export, rounds
from app.placeholder import main as placeholder_main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "study_designs" / "demo.toml"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("SECRET_KEY", "k")
    out = tmp_path / "imgs"
    assert placeholder_main(["--design", str(DEMO), "--out", str(out), "--size", "16"]) == 0
    return out / "manifest.jsonl"


def launch(manifest: Path, round_id: str = "demo", *extra: str) -> int:
    return rounds.main(["launch", "--design", str(DEMO), "--manifest", str(manifest), "--round", round_id, *extra])


def test_launch_then_reuse_then_refuse_changed(env, capsys):
    assert launch(env, "demo", "--reuse") == 0
    assert "launched with 8 pages, 24 images" in capsys.readouterr().out
    assert launch(env, "demo", "--reuse") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert launch(env, "demo") == 2
    assert "already exists" in capsys.readouterr().err
    lines = env.read_text().splitlines()
    env.write_text("\n".join(lines[:-1]) + "\n")  # a changed manifest under the same id
    assert launch(env, "demo", "--reuse") == 2
    assert "different design or manifest" in capsys.readouterr().err


def test_placeholder_rerun_keeps_identical_output(env, capsys):
    before = env.read_bytes()
    assert placeholder_main(["--design", str(DEMO), "--out", str(env.parent), "--size", "16"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert env.read_bytes() == before


def test_every_problem_is_named(env, capsys):
    entries = [json.loads(line) for line in env.read_text().splitlines()]
    by_key = {(e["prompt_id"], e["seed"], e["model_id"]): e for e in entries}
    missing = by_key[("korea-street", 11, "sd")]
    entries.remove(missing)  # no image for one model on one page
    dup = dict(by_key[("korea-food", 21, "scoft_m")], image_id="dup1")
    entries.append(dup)  # two images for one model on one page
    by_key[("nigeria-family", 31, "sd")]["sha256"] = "0" * 64  # wrong hash
    (env.parent / by_key[("nigeria-street", 41, "sd")]["file"]).unlink()  # missing file
    by_key[("korea-food", 22, "sd")]["model_id"] = "dalle"  # unknown model (and so page korea-food-22 lacks sd)
    by_key[("nigeria-street", 42, "sd")]["seed"] = 99  # a seed the design does not list
    env.write_text("\n".join(json.dumps(e) for e in entries) + "\nnot json\n")
    assert launch(env) == 2
    err = capsys.readouterr().err
    for expected in [
        "page korea-street-11 (korea, prompt korea-street, seed 11): no image for model 'sd'",
        "page korea-food-21 (korea, prompt korea-food, seed 21): 2 images for model 'scoft_m'",
        "sha256 of nigeria/nigeria-family-31-sd.png does not match",
        "file nigeria/nigeria-street-41-sd.png does not exist",
        "model 'dalle' is not in the design",
        "page korea-food-22 (korea, prompt korea-food, seed 22): no image for model 'sd'",
        "seed 99 is not one of prompt 'nigeria-street''s seeds",
        "not valid JSON",
    ]:
        assert expected in err, expected
    assert export.main(["--round", "demo", "--out", str(env.parent / "r.csv")]) == 2  # nothing was launched


def test_bad_design_and_round_id(env, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\n')
    assert rounds.main(["launch", "--design", str(bad), "--manifest", str(env), "--round", "r"]) == 2
    assert "bad.toml" in capsys.readouterr().err
    assert launch(env, "Bad Id!") == 2
    assert "round id" in capsys.readouterr().err


def test_export_cli_writes_header_for_a_fresh_round(env, tmp_path, capsys):
    assert launch(env) == 0
    out = tmp_path / "responses.csv"
    assert export.main(["--round", "demo", "--out", str(out)]) == 0
    assert out.read_text().strip() == ",".join(export.COLUMNS)
