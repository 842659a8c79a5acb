"""``analysis.report`` and ``analysis.power`` follow the shared CLI convention (README): help on every option,
``PROG: error: MESSAGE``, exit 2 for invalid input and 1 when a file cannot be written."""

from __future__ import annotations

import pytest

from analysis import power, report
from analysis.simulate import make_spec, simulate_responses, write_responses


@pytest.mark.parametrize("module", [report, power])
def test_every_option_has_help_text(module):
    parser = module.build_parser()
    undocumented = [a.option_strings for a in parser._actions if a.option_strings and not (a.help or "").strip()]
    assert undocumented == []
    assert parser.prog == module.PROG


def test_report_validation_error_is_exit_2_with_the_program_name(tmp_path, capsys):
    code = report.main(["--responses", "x.csv", "--out", str(tmp_path), "--bootstrap", "-1"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "python -m analysis.report: error: --bootstrap must be >= 0"


def test_report_that_cannot_write_its_folder_is_a_runtime_failure(tmp_path, capsys):
    spec = make_spec(cultures=("a",), models=("m1", "m2", "m3"), pages=4)
    csv = tmp_path / "responses.csv"
    write_responses(simulate_responses(spec, participants_per_culture=4, seed=1), csv)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should go")
    code = report.main(["--responses", str(csv), "--out", str(blocker / "out"), "--bootstrap", "0", "--quiet"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m analysis.report: error: ")
