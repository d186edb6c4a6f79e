"""`cove safety train`: the simulator's accounts through the detector's replay into a model file the relay loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cove.safety.model import load


def cove(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True, timeout=300)


def test_train_writes_a_text_model_the_detector_loads_and_says_how_it_did(tmp_path: Path) -> None:
    out = tmp_path / "detector.txt"
    trained = cove("safety", "train", "--accounts", "600", "--seed", "3", "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    assert f"wrote {out}" in trained.stdout
    assert "recall: all" in trained.stdout and "flagged: ordinary" in trained.stdout
    assert load(out) is not None


def test_a_bad_parameter_file_is_one_line_and_no_model(tmp_path: Path) -> None:
    parameters = tmp_path / "populations.toml"
    parameters.write_text("[simulation]\ndays = 0\n")
    out = tmp_path / "detector.txt"
    refused = cove("safety", "train", "--parameters", str(parameters), "--out", str(out))
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_too_few_accounts_to_hold_an_abuser_is_said_plainly(tmp_path: Path) -> None:
    refused = cove("safety", "train", "--accounts", "100", "--seed", "1", "--out", str(tmp_path / "m.txt"))
    assert refused.returncode == 1
    assert "both abusive and legitimate" in refused.stderr and "Traceback" not in refused.stderr
