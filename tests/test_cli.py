"""The main job: python -m sharelearn demo."""

import subprocess
import sys

from sharelearn.__main__ import main


def test_demo_recovers_draws_and_names_the_circular_convolution(capsys):
    assert main(["demo", "--n-inputs", "6", "--kernel-size", "2", "--n-samples", "80"]) == 0
    out = capsys.readouterr().out
    assert "partition distance to the true convolution: 0 of 36 entries (exact recovery)" in out
    assert "A B . . . ." in out  # the first row of a kernel-2 correlation
    assert "discovered symmetry: C_6 (order 6)" in out
    assert "time:" in out


def test_demo_valid_mode(capsys):
    args = ["demo", "--mode", "valid", "--n-inputs", "6", "--kernel-size", "2",
            "--n-samples", "80"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 of 30 entries (exact recovery)" in out
    assert "discovered symmetry: trivial" in out


def test_cli_without_a_command_prints_usage():
    proc = subprocess.run([sys.executable, "-m", "sharelearn"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage: python -m sharelearn demo" in proc.stderr
