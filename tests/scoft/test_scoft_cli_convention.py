"""``python -m scoft`` commands share the CLI convention of app.* and analysis.*: ``--quiet``, hidden ``--no-progress``
alias for older scripts, help text on every option, ``PROG: error: MESSAGE`` on stderr."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from scoft import demo, negatives, sample, train_cli

PARSERS = {"demo": demo.build_parser, "negatives": negatives.build_parser, "sample": sample.build_parser}
PARSERS["train"] = train_cli.build_parser


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_quiet_and_the_old_no_progress_spelling_both_hide_progress(name):
    parser = PARSERS[name]()
    required = [a for a in parser._actions if a.required]
    argv = [x for a in required for x in (a.option_strings[0], "ldm" if a.choices else "x")]
    assert parser.parse_args(argv).quiet is False
    assert parser.parse_args([*argv, "--quiet"]).quiet is True
    assert parser.parse_args([*argv, "--no-progress"]).quiet is True  # old scripts keep working
    text = parser.format_help()
    assert "--quiet" in text and "--no-progress" not in text  # the alias is not advertised


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help_text(name):
    parser = PARSERS[name]()
    undocumented = [
        a.option_strings
        for a in parser._actions
        if a.option_strings and a.help != argparse.SUPPRESS and not (a.help or "").strip()
    ]
    assert undocumented == []


def test_unknown_command_is_a_usage_error_in_the_shared_style():
    proc = subprocess.run([sys.executable, "-m", "scoft", "trian"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("python -m scoft: error: unknown command 'trian'") and "train" in proc.stderr


def test_a_bad_sample_design_is_one_error_line_with_the_program_name(tmp_path, capsys):
    bad = tmp_path / "d.toml"
    bad.write_text("not = [toml")
    assert sample.main(["--design", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m scoft sample: error: ")
