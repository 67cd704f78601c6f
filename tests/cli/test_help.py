"""`--help` documents the defaults it shows, so they must match TrainConfig."""

import re

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
