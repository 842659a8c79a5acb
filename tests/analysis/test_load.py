"""Reading responses.csv: types, the permutation rule, errors that name CSV lines, exclusions, design labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import COLUMNS, ResponsesError, apply_exclusions, attach_design, read_responses
from study_designs.schema import load_design

REPO = Path(__file__).resolve().parents[2]
MODELS = ("sd", "scoft_m", "scoft_mpc")


def export(
    n_participants: int = 4,
    pages: tuple[str, ...] = ("korea-street-1", "korea-food-2"),
    criteria: tuple[str, ...] = ("description", "offensiveness"),
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """A small export in the app's format (strings as written to the CSV)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_participants):
        for page in pages:
            order = rng.permutation(len(MODELS))
            for crit in criteria:
                ranks = rng.permutation(len(MODELS)) + 1
                for i, model in enumerate(MODELS):
                    rows.append(
                        {
                            "round_id": "demo",
                            "participant_id": f"p{p}",
                            "participant_culture": "korea",
                            "page_id": page,
                            "page_culture": "korea",
                            "prompt_id": page.rsplit("-", 1)[0],
                            "seed": page.rsplit("-", 1)[1],
                            "criterion": crit,
                            "model_id": model,
                            "image_id": f"img-{page}-{model}",
                            "rank": str(ranks[i]),
                            "n_items": "3",
                            "initial_position": str(order[i]),
                            "moved": "true" if ranks[i] - 1 != order[i] else "false",
                            "seconds_on_page": "12.5",
                            "submitted_at": "2026-11-27T10:00:00Z",
                            "is_attention_check": "false",
                            "is_repeat": "false",
                            "attention_passed": "",
                            "excluded": "false",
                        }
                    )
    return pd.DataFrame(rows, columns=COLUMNS)


def write(df: pd.DataFrame, tmp_path: Path, name: str = "responses.csv") -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_reads_a_valid_export_with_types(tmp_path):
    raw = export()
    raw.loc[raw.index % 2 == 0, "moved"] = raw.loc[raw.index % 2 == 0, "moved"].map({"true": "1", "false": "0"})
    df = read_responses(write(raw, tmp_path))
    assert list(df.columns) == COLUMNS
    assert len(df) == len(raw) == 4 * 2 * 2 * 3
    assert df["rank"].dtype == np.int16 and df["n_items"].dtype == np.int16
    assert isinstance(df["participant_id"].dtype, pd.CategoricalDtype)
    assert df["moved"].dtype == bool and df["excluded"].dtype == bool
    assert df["moved"].tolist() == [
        int(v) - 1 != int(p) for v, p in zip(raw["rank"], raw["initial_position"], strict=True)
    ]
    assert df["attention_passed"].isna().all()
    assert str(df["submitted_at"].dt.tz) == "UTC"
    assert df["seed"].tolist() == [int(s) for s in raw["seed"]]
    assert df.attrs["skipped_judgments"] == 0


def test_header_problems_are_named(tmp_path):
    raw = export()
    with pytest.raises(ResponsesError, match=r"missing column\(s\) \['rank'\]"):
        read_responses(write(raw.drop(columns="rank"), tmp_path))
    swapped = raw[[*COLUMNS[:10], "n_items", "rank", *COLUMNS[12:]]]
    with pytest.raises(ResponsesError, match="out of order"):
        read_responses(write(swapped, tmp_path))
    inserted = raw.assign(notes="x")[[*COLUMNS[:3], "notes", *COLUMNS[3:]]]
    with pytest.raises(ResponsesError, match=r"unexpected column\(s\) \['notes'\] before 'excluded'"):
        read_responses(write(inserted, tmp_path))
    with pytest.raises(ResponsesError, match=r"duplicate column\(s\) \['rank'\]"):
        read_responses(write(raw.assign(extra=raw["rank"]).rename(columns={"extra": "rank"}), tmp_path))
    with pytest.raises(ResponsesError, match="no such file"):
        read_responses(tmp_path / "absent.csv")


def test_columns_after_the_contract_are_accepted_and_ignored(tmp_path):
    raw = export()
    plain = read_responses(write(raw, tmp_path))
    newer = raw.assign(late=["true" if i % 2 else "false" for i in range(len(raw))], notes="free text, with comma")
    df = read_responses(write(newer, tmp_path))  # a newer export: columns appended after 'excluded'
    assert list(df.columns) == COLUMNS
    pd.testing.assert_frame_equal(df, plain)


def test_non_permutation_names_csv_lines(tmp_path):
    raw = export()
    raw.loc[7, "rank"] = raw.loc[6, "rank"]  # rows 6..8 are one ranking (CSV lines 8..10)
    with pytest.raises(ResponsesError) as err:
        read_responses(write(raw, tmp_path))
    msg = str(err.value)
    assert "not a permutation" in msg and "line(s) 8, 9, 10" in msg


def test_missing_row_and_repeated_model(tmp_path):
    raw = export()
    with pytest.raises(ResponsesError, match=r"number of rows different from n_items: line\(s\) 2, 3\b"):
        read_responses(write(raw.drop(index=2), tmp_path))
    dup = raw.copy()
    dup.loc[4, "model_id"] = dup.loc[3, "model_id"]
    with pytest.raises(ResponsesError, match=r"model_id repeated within one ranking: line\(s\) 6\b"):
        read_responses(write(dup, tmp_path))


def test_bad_values_are_reported_together(tmp_path):
    raw = export()
    raw.loc[0, "moved"] = "maybe"
    raw.loc[5, "rank"] = "2.5"
    raw.loc[9, "initial_position"] = "7"
    raw.loc[11, "participant_id"] = ""
    with pytest.raises(ResponsesError) as err:
        read_responses(write(raw, tmp_path))
    msg = str(err.value)
    assert "column 'moved': not a boolean (true/false/1/0): line(s) 2\n" in msg
    assert "column 'rank': not an integer: line(s) 7\n" in msg
    assert "column 'initial_position': outside 0..n_items-1: line(s) 11" in msg
    assert "column 'participant_id': empty value: line(s) 13" in msg
    assert msg.startswith(str(tmp_path / "responses.csv"))


def test_many_bad_rows_are_summarised(tmp_path):
    raw = export()
    raw.loc[:, "rank"] = "9"
    msg = str(pytest.raises(ResponsesError, read_responses, write(raw, tmp_path)).value)
    assert "outside 1..n_items: line(s) 2, 3, 4, 5, 6 (and 43 more rows)" in msg


def test_inconsistent_participant_culture(tmp_path):
    raw = export()
    raw.loc[raw["participant_id"] == "p1", "participant_culture"] = "nigeria"
    raw.loc[raw.index[-1], "participant_culture"] = "nigeria"
    msg = str(pytest.raises(ResponsesError, read_responses, write(raw, tmp_path)).value)
    assert "participant_culture differs between rows of the same participant" in msg


def test_skipped_rankings_are_dropped_and_counted(tmp_path):
    raw = export()
    raw.loc[0:2, "rank"] = ""
    df = read_responses(write(raw, tmp_path))
    assert len(df) == len(raw) - 3 and df.attrs["skipped_judgments"] == 1
    _, info = apply_exclusions(df)
    assert info["skipped_judgments"] == 1
    raw.loc[3, "rank"] = ""
    with pytest.raises(ResponsesError, match=r"empty for some but not all images of a ranking: line\(s\) 5, 6, 7"):
        read_responses(write(raw, tmp_path))


def test_repeat_pages_are_separate_rankings(tmp_path):
    raw = export()
    first = raw[(raw["participant_id"] == "p0") & (raw["page_id"] == "korea-street-1")]
    again = first.assign(is_repeat="true", rank=first["rank"].map({"1": "3", "2": "2", "3": "1"}))
    df = read_responses(write(pd.concat([raw, again], ignore_index=True), tmp_path))
    assert df["is_repeat"].sum() == len(again)


def test_apply_exclusions(tmp_path):
    raw = export(n_participants=5)
    raw.loc[raw["participant_id"] == "p3", "excluded"] = "true"
    check = raw[(raw["participant_id"] == "p3") & (raw["page_id"] == "korea-street-1")]
    check = check.assign(page_id="check-1", is_attention_check="true", attention_passed="false")
    ok_check = raw[(raw["participant_id"] == "p0") & (raw["page_id"] == "korea-street-1")]
    ok_check = ok_check.assign(page_id="check-1", is_attention_check="true", attention_passed="true")
    df = read_responses(write(pd.concat([raw, check, ok_check], ignore_index=True), tmp_path))
    rows, info = apply_exclusions(df)
    assert info["n_participants"] == 5 and info["n_excluded"] == 1 and info["n_included"] == 4
    assert info["excluded_ids"] == ["p3"]
    assert info["reasons"] == {"p3": "failed 1 attention check page(s)"}
    assert info["attention_rows_dropped"] == len(ok_check)
    assert "p3" not in set(rows["participant_id"]) and not rows["is_attention_check"].any()
    assert list(rows["participant_id"].cat.categories) == ["p0", "p1", "p2", "p4"]
    kept, info2 = apply_exclusions(df, keep_excluded=True, drop_attention=False)
    assert len(kept) == len(df) and info2["n_excluded"] == 1 and info2["attention_rows_dropped"] == 0


def test_attach_design_labels(tmp_path):
    design = load_design(REPO / "study_designs" / "demo.toml")
    df = attach_design(read_responses(write(export(), tmp_path)), design)
    assert list(df["model_id"].cat.categories) == ["sd", "scoft_m", "scoft_mpc"]
    assert set(df["model_label"]) == {"Stable Diffusion (tiny)", "SCoFT+M (tiny)", "SCoFT+MPC (tiny)"}
    assert set(df["page_culture_label"]) == {"Korea"}
    assert set(df["criterion_question"]) == {
        "How well does each image match the description?",
        "How offensive do you personally find each image?",
    }
    odd = export()
    odd["model_id"] = odd["model_id"].replace("sd", "dalle")
    with pytest.raises(ResponsesError, match=r"model_id \['dalle'\] not in design 'demo'"):
        attach_design(read_responses(write(odd, tmp_path)), design)


def test_culture_in_question_text(tmp_path):
    design = load_design(REPO / "study_designs" / "demo.toml")
    df = attach_design(read_responses(write(export(criteria=("cultural_relevance",)), tmp_path)), design)
    assert set(df["criterion_question"]) == {"How well does each image represent Korean culture?"}


def test_excel_csv_with_byte_order_mark_and_crlf_is_read(tmp_path):
    """Excel's "CSV UTF-8 (comma delimited)" starts with a BOM and ends lines with CRLF; a BOM must not be data."""
    raw = export()
    raw.loc[0, "participant_id"] = "pé"  # non-ASCII survives too
    raw.loc[raw["participant_id"] == "p0", "participant_id"] = "pé"
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + raw.to_csv(index=False, lineterminator="\r\n").encode("utf-8"))
    df = read_responses(path)
    plain = read_responses(write(raw, tmp_path))
    assert list(df.columns) == COLUMNS
    pd.testing.assert_frame_equal(df, plain)
    assert "pé" in set(df["participant_id"].astype(str))
    # a BOM is not a licence for a wrong header: the first column is still checked
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xef\xbb\xbf" + raw.rename(columns={"round_id": "round"}).to_csv(index=False).encode())
    with pytest.raises(ResponsesError, match=r"missing column\(s\) \['round_id'\]"):
        read_responses(bad)
