"""The command line: one sentence and exit 2 for every user mistake, never a traceback."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from convscope.cli import app

runner = CliRunner()

SMALL = ["--set", "train_subset=600", "--set", "test_subset=200", "--batch-size", "50", "-q"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_user_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = result.output.lower()
    for w in words:
        assert w.lower() in text, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for cmd in ("lab", "train", "summary", "report", "reproduce", "data"):
        assert cmd in result.output


@pytest.mark.parametrize("args, words", [
    (("summary", "lenet"), ("unknown model", "lenet5")),
    (("summary", "lenet5", "--input", "28x28"), ("cxhxw",)),
    (("summary", "lenet5", "--input", "1x20x20"), ("expects 28×28",)),
    (("summary", "alexnet", "--input", "3x16x16"), ("at least",)),
    (("train", "vgg17", "-q"), ("unknown model", "vgg16")),
    (("train", "lenet5", "--data", "minst", "-q"), ("unknown dataset", "mnist")),
    (("train", "lenet5", "--set", "epochs=many", "-q"), ("number",)),
    (("reproduce", "lenett5"), ("unknown experiment", "lenet5")),
    (("reproduce", "lenet5", "--width", "0.5"), ("no width setting", "crelu")),
    (("reproduce", "crelu", "--width", "0"), ("positive",)),
    (("train", "lenet5", "--set", "grad_clip=-1", "-q"), ("grad_clip",)),
    (("data", "verify", "cifar11"), ("unknown dataset", "cifar10")),
    (("report", "/nonexistent/dir"), ("not a directory",)),
    (("summary", "lenet5", "--set", "foo=1"), ("no argument 'foo'", "num_classes", "activation")),
    (("summary", "lenet5", "--set", "num_classes=abc"), ("num_classes", "whole number")),
    (("train", "lenet5", "--set", "model_args.foo=1", "-q"), ("no argument 'foo'", "in_channels")),
    (("train", "lenet5", "--set", "model_args.num_classes=3", "-q"), ("comes from the dataset",)),
])
def test_user_mistakes_exit_2_with_one_sentence(args, words):
    assert_user_error(invoke(*args), *words)


def test_summary_table_and_json():
    result = invoke("summary", "lenet5-classic")
    assert result.exit_code == 0, result.output
    assert "1,516" in result.output and "151,600" in result.output
    doc = json.loads(invoke("summary", "vgg16", "--json").output)
    assert doc["total_params"] == 138_357_544 and doc["depth"] == 16


def test_summary_list():
    result = invoke("summary", "--list")
    assert result.exit_code == 0 and "lenet5" in result.output and "googlenet" in result.output


@pytest.mark.slow
def test_train_run_dir_rules_and_report(tmp_path):
    out = tmp_path / "run"
    ok = invoke("train", "lenet5", "--epochs", "1", "--out", str(out), *SMALL)
    assert ok.exit_code == 0, ok.output
    for name in ("run.json", "metrics.jsonl", "summary.json", "layers.npz", "checkpoint/state.json"):
        assert (out / name).exists(), name
    from convscope.train.checkpoint import load_checkpoint
    from convscope.train.run import load_run_model

    model, cfg = load_run_model(out)  # the finished run's model, rebuilt from its checkpoint alone
    saved = load_checkpoint(out / "checkpoint").model_state
    assert cfg.epochs == 1 and not model.training
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    assert_user_error(invoke("train", "lenet5", "--epochs", "1", "--out", str(out), *SMALL), "already holds this run")
    assert_user_error(invoke("train", "lenet5", "--epochs", "1", "--seed", "5", "--out", str(out), *SMALL),
                      "different run", "--overwrite")
    again = invoke("train", "lenet5", "--epochs", "1", "--seed", "5", "--out", str(out), "--overwrite", *SMALL)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "run.json").read_text())["config"]["seed"] == 5

    # A longer run resumes from the one-epoch checkpoint.
    more = invoke("train", "lenet5", "--epochs", "2", "--seed", "5", "--out", str(out), "--resume", *SMALL)
    assert more.exit_code == 0, more.output
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    rep = invoke("report", str(out))
    assert rep.exit_code == 0, rep.output
    assert (out / "atlas" / "index.html").exists()

    # A truncated checkpoint is reported, not a traceback; nothing else is touched.
    model_file = next((out / "checkpoint").glob("model-*.safetensors"))
    model_file.write_bytes(model_file.read_bytes()[:500])
    bad = invoke("train", "lenet5", "--epochs", "3", "--seed", "5", "--out", str(out), "--resume", *SMALL)
    assert_user_error(bad, "truncated or corrupt")
    assert (out / "atlas" / "index.html").exists()


def test_data_list_shows_every_dataset():
    result = invoke("data", "list")
    assert result.exit_code == 0, result.output
    for name in ("mnist", "fashion-mnist", "cifar10", "cifar100"):
        assert name in result.output


def test_checksum_mismatch_is_a_user_error(tmp_path, monkeypatch):
    """Full-size files whose decoded arrays differ from the pin: exit 2, and the cache is not touched."""
    import numpy as np

    from tests.data.fakes import write_idx

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10000, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10000, np.uint8))
    assert_user_error(invoke("data", "verify", "mnist", "--root", str(tmp_path)), "checksum")
    assert not (tmp_path / "cache" / "convscope" / "mnist" / "test.npz").exists()


def test_result_table_prints_lists_of_names(capsys):
    from convscope.cli.run import _print_result
    from convscope.result import Published, Result

    result = Result("x", "X", {"layers": ["input", "features.conv1"], "acc": 0.5},
                    {"acc": Published(0.9, "[a paper]")})
    _print_result(result)
    out = capsys.readouterr().out
    assert "features.conv1" in out and "[a paper]" in out


def test_train_ends_by_saying_how_to_render_the_atlas(tmp_path, monkeypatch):
    import convscope.cli.run as cli

    class Outcome:
        final = {"test_acc": 0.5, "epoch": 1}

    monkeypatch.setattr(cli, "_train", lambda cfg, out, *args: Outcome())
    result = invoke("train", "lenet5", "--out", str(tmp_path / "run"), "-q")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"render its atlas with: convscope report {tmp_path / 'run'}"
