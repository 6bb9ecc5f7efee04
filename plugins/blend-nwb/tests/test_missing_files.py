"""A missing NWB file: the error names the config key and, for NLB datasets, `blend fetch`."""

from __future__ import annotations

from pathlib import Path

from blend_core.api import run_blend as main

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "nlb" / "mc_maze.yaml"


def test_the_nlb_examples_missing_file_names_data_path_and_blend_fetch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no 000128/ here
    assert main(["validate", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err == ("error: 000128/sub-Jenkins/sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb: file not found "
                   "(data.path, relative to the current directory); download it with: blend fetch mc_maze "
                   "(prints the path for data.path)\n")
