"""The participant's language: recorded on their row as they answer (and again after switching), exported as the last
column of participants.csv and described in the codebook; refused pages and exit pages speak it too."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlmodel import select

from app import codebook, researcher_ops
from app.clock import utcnow
from app.models import Participant, Round
from tests.app.conftest import DESIGNS
from tests.factories.pages import parse
from tests.factories.web import walk

QUESTION_ES = "¿Qué tan bien corresponde cada imagen a la descripción?"


def _bilingual(tmp_path: Path, platform: str = "none", extra: str = "") -> Path:
    text = (DESIGNS / "demo.toml").read_text()
    text = text.replace("seed = 7\n", 'seed = 7\nlanguages = ["en", "es"]\n', 1)
    text = text.replace('platform = "none"', f'platform = "{platform}"\n{extra}')
    text += f'\n[translations.es.criteria.description]\nquestion = "{QUESTION_ES}"\n'
    path = tmp_path / "demo-es.toml"
    path.write_text(text)
    return path


def _row(study, code: str) -> Participant:
    with study.session() as s:
        return s.exec(select(Participant).where(Participant.code == code)).one()


def _participants_csv(study) -> list[dict[str, str]]:
    with study.session() as s:
        text = researcher_ops.export_text(s, s.get(Round, study.round_id), "participants", now=utcnow())
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames is not None and reader.fieldnames[-1] == "language"
    return list(reader)


def test_language_is_recorded_updated_on_switching_and_exported_last(make_study, tmp_path):
    study = make_study(_bilingual(tmp_path), "r1")
    study.client.headers["accept-language"] = "es-MX,es;q=0.9,en;q=0.5"
    p = walk(study.client, "/s/r1", culture="korea", stop_after_pages=1)
    assert "Siguiente" in p.final_html or "Terminar" in p.final_html  # the pages were in Spanish
    assert _row(study, p.code).language == "es"
    assert [r["language"] for r in _participants_csv(study)] == ["es"]

    study.client.get(f"/p/{p.code}", params={"lang": "en"})  # the switcher (sets the cookie)
    walk(study.client, f"/p/{p.code}", culture="korea", stop_after_pages=1)
    assert _row(study, p.code).language == "en"
    assert [r["language"] for r in _participants_csv(study)] == ["en"]


def test_a_language_the_design_does_not_offer_records_the_one_shown(make_study, tmp_path):
    study = make_study(_bilingual(tmp_path), "r1")
    study.client.headers["accept-language"] = "fr-FR,fr;q=0.9"
    p = walk(study.client, "/s/r1", culture="korea", stop_after_pages=1)
    assert _row(study, p.code).language == "en"


def test_not_yet_consented_participants_have_no_language(make_study, tmp_path):
    study = make_study(_bilingual(tmp_path), "r1")
    r = study.client.get("/s/r1", follow_redirects=True)
    assert r.status_code == 200
    assert [row["language"] for row in _participants_csv(study)] == [""]


def test_codebook_describes_the_language_column_last():
    cols = json.loads(codebook.codebook_json())["files"]["participants.csv"]
    assert cols[-1]["name"] == "language" and "BCP 47" in cols[-1]["meaning"]
    assert "BCP 47" in codebook.codebook_md()


def test_a_refused_page_quotes_the_translated_question_in_spanish(make_study, tmp_path):
    study = make_study(_bilingual(tmp_path), "r1")
    study.client.headers["accept-language"] = "es"
    p = walk(study.client, "/s/r1", culture="korea", stop_after_pages=0)
    form = parse(p.final_html).forms[0]
    r = study.client.post(form.action, data={"token": form.hidden["token"]})
    assert r.status_code == 400
    assert f"Asigne un puesto a cada imagen en «{QUESTION_ES}»" in r.text
    assert "Rank every image" not in r.text


def test_exit_pages_speak_the_participants_language(make_study, tmp_path):
    extra = 'declined = { code = "T-DECLINE" }'
    study = make_study(_bilingual(tmp_path, "prolific", extra), "r1")
    study.client.headers["accept-language"] = "es"
    r = study.client.get(
        "/s/r1", params={"PROLIFIC_PID": "P1", "STUDY_ID": "S1", "SESSION_ID": "X"}, follow_redirects=True
    )
    code = str(r.url).rsplit("/p/", 1)[-1]
    r = study.client.post(f"/p/{code}/consent", data={"decline": "yes"}, follow_redirects=True)
    assert r.status_code == 200
    assert "Ha salido del estudio" in r.text and "Su código:" in r.text and "T-DECLINE" in r.text
    assert "Continuar a Prolific" in r.text and 'lang="es"' in r.text
    assert "You have left the study" not in r.text


def test_an_untranslated_prompt_on_a_spanish_page_is_marked_as_english(make_study, tmp_path):
    study = make_study(_bilingual(tmp_path), "r1")  # the demo's prompts have no Spanish
    study.client.headers["accept-language"] = "es"
    p = walk(study.client, "/s/r1", culture="korea", stop_after_pages=0)
    assert '<html lang="es"' in p.final_html
    assert '“<span lang="en">' in p.final_html
    study.client.headers["accept-language"] = "en"
    r = study.client.get(f"/p/{p.code}", params={"lang": "en"})
    assert "“<span>" in r.text and '<span lang="en">' not in r.text
