"""The CLI surface: help, exit codes, one-line errors, README coverage."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokmap_ui.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("inspect-tokenizer", "inspect-dictionary", "serve"):
        assert name in out


@pytest.mark.parametrize("name", subcommands())
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["inspect-dictionary", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert str(missing) in err and "not found" in err


def test_python_m_entry_point_exit_code(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    result = subprocess.run([sys.executable, "-m", "tokmap_ui", "inspect-dictionary", str(empty)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert "empty" in result.stderr and "Traceback" not in result.stderr


def test_every_subcommand_is_in_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"python -m tokmap_ui ([a-z][a-z-]+)", readme))
    missing = set(subcommands()) - documented
    assert not missing, f"subcommands missing from README examples: {sorted(missing)}"
