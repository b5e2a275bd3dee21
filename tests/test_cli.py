import pytest

from darkscope.cli import COMMANDS, main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)


def test_unknown_command_is_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "expected"), [
    (["backscatter", "detect", "x.pcap"],
     "darkscope backscatter detect: error: Missing option '--model' (Model directory); "
     "see 'darkscope backscatter detect --help'"),
    (["rules", "mine", "--bogus"],
     "darkscope rules mine: error: No such option '--bogus'; see 'darkscope rules mine --help'"),
    (["simulate", "--scale", "x", "-o", "a.pcap"],
     "darkscope simulate: error: --scale: 'x' is not a valid float; "
     "see 'darkscope simulate --help'"),
    (["topics", "fit", "."], "darkscope topics fit: error: LISTINGS: '.' is a directory, not a "
     "file; see 'darkscope topics fit --help'"),
    (["topics", "assign", "x.jsonl", "--model", "pyproject.toml", "-o", "a.jsonl"],
     "darkscope topics assign: error: --model: 'pyproject.toml' is a file, not a directory; "
     "see 'darkscope topics assign --help'"),
    (["topics", "fit"], "darkscope topics fit: error: Missing argument 'LISTINGS'; "
     "see 'darkscope topics fit --help'"),
])
def test_usage_errors_are_one_line(args, expected, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == expected and captured.out == ""
