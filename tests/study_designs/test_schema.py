import tomllib
from pathlib import Path

import pytest

from study_designs import DesignError, load_design
from study_designs.__main__ import main as cli
from study_designs.schema import expand_env, parse_design

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "study_designs" / "demo.toml"
PAPER = ROOT / "study_designs" / "scoft-cvpr2024.toml"


def test_paper_design_matches_the_published_study():
    d = load_design(PAPER)
    assert [c.id for c in d.cultures] == ["china", "india", "korea", "mexico", "nigeria"]
    assert [m.label for m in d.models] == ["Stable Diffusion", "SCoFT+M", "SCoFT+MP", "SCoFT+MPC"]
    assert [c.id for c in d.criteria] == ["description", "cultural_relevance", "stereotypes", "offensiveness"]
    counts = {c.id: len(d.pages(c.id)) for c in d.cultures}
    assert counts == {"china": 60, "india": 54, "korea": 50, "mexico": 50, "nigeria": 51}
    assert len(d.prompts) == 56
    assert len({p.id for p in d.pages()}) == 265


def test_demo_design_is_small():
    d = load_design(DEMO)
    assert (len(d.cultures), len(d.models), len(d.prompts)) == (2, 3, 4)
    assert all(len(p.seeds) == 2 for p in d.prompts)


def _demo_data() -> dict:
    return tomllib.loads(DEMO.read_text())


def test_errors_name_file_and_every_field(tmp_path):
    data = _demo_data()
    data["assignment"]["position_balance"] = "zigzag"
    data["prompts"][0]["culture"] = "atlantis"
    data["surprise"] = 1
    with pytest.raises(DesignError) as err:
        parse_design(data, tmp_path / "bad.toml")
    msg = str(err.value)
    assert "bad.toml" in msg
    assert "assignment.position_balance" in msg
    assert "surprise" in msg


def test_unknown_prompt_culture_is_named(tmp_path):
    data = _demo_data()
    data["prompts"][0]["culture"] = "atlantis"
    with pytest.raises(DesignError, match="prompts.0.culture: 'atlantis'"):
        parse_design(data, "x.toml")


def test_duplicate_ids_and_seeds_rejected():
    data = _demo_data()
    data["models"][1]["id"] = data["models"][0]["id"]
    with pytest.raises(DesignError, match="appears 2 times"):
        parse_design(data)
    data = _demo_data()
    data["prompts"][0]["seeds"] = [1, 1]
    with pytest.raises(DesignError, match="repeated seeds"):
        parse_design(data)


def test_base_variant_takes_no_lora_and_others_need_one():
    data = _demo_data()
    del data["models"][1]["lora"]
    with pytest.raises(DesignError, match="needs a lora"):
        parse_design(data)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("id = ")
    with pytest.raises(DesignError, match="not valid TOML"):
        load_design(bad)
    with pytest.raises(DesignError, match="no such design file"):
        load_design(tmp_path / "nope.toml")


def test_design_is_frozen():
    d = load_design(DEMO)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen models
        d.id = "other"


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("SCOFT_X", "/models")
    assert expand_env("${SCOFT_X}/sd") == "/models/sd"
    monkeypatch.delenv("SCOFT_X")
    assert expand_env("${SCOFT_X:-fallback}/sd") == "fallback/sd"
    with pytest.raises(DesignError, match="SCOFT_X"):
        expand_env("${SCOFT_X}/sd")
    d = load_design(PAPER)
    monkeypatch.setenv("SCOFT_RUNS", "/r")
    assert d.models[3].lora_path("korea") == "/r/korea/mpc"
    assert d.models[0].lora_path("korea") is None


def test_participants_needed():
    d = load_design(PAPER)
    # 60 pages x 5 rankings / 20 pages per participant
    assert d.participants_needed("china") == 15
    assert d.participants_needed("india") == 14  # ceil(54 * 5 / 20)


def test_check_cli(capsys, tmp_path):
    assert cli(["check", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "korea" in out and "participants needed" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\n')
    assert cli(["check", str(bad)]) == 2
    assert "bad.toml" in capsys.readouterr().err


def test_check_cli_finds_every_translation_of_the_paper_design(capsys, tmp_path):
    assert cli(["check", str(PAPER)]) == 0
    out = capsys.readouterr().out
    assert "  languages: en, es, zh-Hans, ko, hi\n" in out
    assert "missing translation" not in out
    # a gap in any language is reported by name (here: one Korean prompt and the Hindi title)
    text = PAPER.read_text()
    for line in ('korea-07 = "한국 무용을 공연하는 무용수들"\n', 'title = "SCoFT (CVPR 2024): चार'):
        assert line in text
        text = text.replace(line, "# " + line, 1)
    gappy = tmp_path / "gappy.toml"
    gappy.write_text(text)
    assert cli(["check", str(gappy)]) == 0
    missing = [line.strip() for line in capsys.readouterr().out.splitlines() if "missing translation" in line]
    assert missing == ["missing translation ko: prompts.korea-07", "missing translation hi: title"]
