"""Progress: a bar on a terminal, a few plain lines in a file, and Ctrl-C on a line of its own."""

from __future__ import annotations

import io

import pytest

from blend_core.cli import main, resume_command
from blend_core.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_first_last_and_timed_lines_only():
    out = io.StringIO()
    p = Progress("student", 50, stream=out, seconds=3600)
    for epoch in range(50):
        p.update(epoch, val=1.0 / (epoch + 1))
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith(" student: epoch 1/50 val=1.0000")
    assert lines[1].startswith(" student: epoch 50/50 val=0.0200")


def test_a_file_gets_a_line_every_interval_and_the_early_stopped_last_epoch():
    out = io.StringIO()
    p = Progress("teacher", 10, stream=out, seconds=0)
    for epoch in range(4):
        p.update(epoch)
    assert len(out.getvalue().splitlines()) == 4
    out2 = io.StringIO()
    p2 = Progress("teacher", 10, stream=out2, seconds=3600)
    for epoch in range(4):  # early stopping after 4 of 10 epochs
        p2.update(epoch)
    p2.close()
    assert [line.split(" (")[0] for line in out2.getvalue().splitlines()] == [
        " teacher: epoch 1/10", " teacher: epoch 4/10"]


def test_a_terminal_gets_a_bar_and_off_prints_nothing():
    term = Terminal()
    p = Progress("baseline", 3, stream=term)
    for epoch in range(3):
        p.update(epoch, val=0.5)
    p.close()
    assert "\r" in term.getvalue() and "3/3" in term.getvalue() and term.getvalue().endswith("\n")
    quiet = io.StringIO()
    p = Progress("baseline", 3, stream=quiet, mode="off")
    p.update(0)
    p.close()
    assert quiet.getvalue() == ""


def test_training_to_a_file_writes_few_lines(tmp_path, tiny_config_file, capsys):
    code = main(["run", str(tiny_config_file), "--out", str(tmp_path / "r"), "--set", "train.progress=true",
                 "--set", "train.max_epochs=3", "--set", "train.progress_seconds=3600"])
    err = capsys.readouterr().err
    assert code == 0 and "\r" not in err
    assert not (tmp_path / "r" / "run.lock").exists()  # a finished run keeps no lock file
    for role in ("teacher", "student", "baseline"):  # first and last epoch only
        epochs = [line.split()[2] for line in err.splitlines() if line.strip().startswith(f"{role}:")]
        assert epochs == ["1/3", "3/3"]


def test_ctrl_c_closes_the_bar_and_prints_the_exact_resume_command(tmp_path, tiny_config_file, capsys, monkeypatch):
    import blend_core.runner as runner

    term = Terminal()

    def interrupted(*args, **kwargs):
        bar = Progress("teacher", 10, stream=term)
        bar.update(0)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    argv = ["run", str(tiny_config_file), "--out", str(tmp_path / "my run"), "--overwrite"]
    assert main(argv) == 130
    assert term.getvalue().endswith("\n")  # the bar's line is ended before the message
    err = capsys.readouterr().err
    assert err == f"interrupted; continue with: blend run {tiny_config_file} --out '{tmp_path / 'my run'}' --resume\n"


@pytest.mark.parametrize("argv, expected", [
    (["demo"], "blend demo --resume"),
    (["run", "c.yaml", "--resume", "--set", "a=1"], "blend run c.yaml --resume --set a=1"),
])
def test_resume_command(argv, expected):
    assert resume_command(argv) == expected
