"""`--help`: the defaults it shows match TrainConfig, flags read as flags, and it says what --set can set."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convscope.cli import app
from convscope.config import TrainConfig


def test_train_help_defaults_match_the_config():
    raw = CliRunner().invoke(app, ["train", "--help"]).output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", raw).split())  # rich's panel borders out, wrapped lines joined
    shown = dict(re.findall(r"--(epochs|batch-size|optimizer|lr|schedule|seed)\s.*?\[default: ([^\]]+)\]", text))
    cfg = TrainConfig()
    assert shown == {"epochs": str(cfg.epochs), "batch-size": str(cfg.batch_size), "optimizer": cfg.optimizer,
                     "lr": str(cfg.lr), "schedule": cfg.schedule, "seed": str(cfg.seed)}


def _help(*command: str) -> str:
    raw = CliRunner().invoke(app, [*command, "--help"]).output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", raw).split())


COMMANDS = [("lab",), ("train",), ("summary",), ("report",), ("reproduce",), ("data", "fetch"), ("data", "list"),
            ("data", "verify")]


@pytest.mark.parametrize("command", COMMANDS)
def test_boolean_options_read_as_bare_flags(command):
    text = _help(*command)
    assert "--no-" not in text  # no --resume/--no-resume pairs
    for flag in re.findall(r"(--(?!help)[a-z-]+) <bool>", text):
        pytest.fail(f"{flag} is shown taking a <bool> value; it is a switch")


def test_the_flags_are_switches():
    text = _help("train")
    assert re.search(r"--resume Continue", text) and re.search(r"--overwrite Replace", text)


def test_summary_set_says_what_it_can_set_and_list_shows_it():
    text = _help("summary")
    assert re.search(r"--set .*constructor argument of the model.*summary --list", text)
    listing = CliRunner().invoke(app, ["summary", "--list"]).output.splitlines()
    lenet = next(line for line in listing if line.split()[0] == "lenet5")
    # by hand, from LeNet5.__init__
    assert lenet.split(None, 1)[1] == ('in_channels=1, num_classes=10, activation="relu", first_activation=null, '
                                       'pool="max"')
    assert any(line.startswith("alexnet") and "groups=1" in line for line in listing)


def test_train_help_shows_how_to_train_on_a_subset_and_render_the_atlas():
    text = _help("train")
    assert "--set train_subset=6000" in text and "test_subset=" in text
    assert "convscope report OUT" in text


def test_python_dash_m_convscope_runs():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-m", "convscope", "--help"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m convscope" in result.stdout or "Usage: convscope" in result.stdout
    for cmd in ("lab", "train", "summary", "report", "reproduce", "data"):
        assert cmd in result.stdout
