import pytest

from convscope.config import TrainConfig, resolve, to_dict
from convscope.errors import UserError
from convscope.experiments.lenet5 import LeNet5Config


def test_overrides_are_parsed_by_field_type(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 7\noptimizer = "sgd"\n[model_args]\nactivation = "tanh"\n')
    cfg = resolve(TrainConfig, toml, ["lr=0.5", "train_subset=100", "test_subset=none"], epochs=None, seed=3)
    assert (cfg.epochs, cfg.optimizer, cfg.lr, cfg.seed) == (7, "sgd", 0.5, 3)
    assert cfg.train_subset == 100 and cfg.test_subset is None
    assert cfg.model_args == {"activation": "tanh"}
    assert to_dict(cfg)["lr"] == 0.5


def test_nested_and_list_fields():
    cfg = resolve(LeNet5Config, None, ["seeds=4,5", "train.epochs=1"])
    assert cfg.seeds == [4, 5] and cfg.train.epochs == 1 and cfg.train.model == "lenet5"


@pytest.mark.parametrize("bad, words", [
    (["epochs=two"], "whole number"), (["optimizer=rmsprop"], "one of"), (["nonsense=1"], "Unknown config key"),
    (["epochs"], "key=value"), (["epochs=1.5"], "whole number"),
])
def test_bad_overrides_say_what_to_do(bad, words):
    with pytest.raises(UserError, match=words):
        resolve(TrainConfig, None, bad)


def test_missing_or_broken_toml(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve(TrainConfig, tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3")
    with pytest.raises(UserError, match="not valid TOML"):
        resolve(TrainConfig, bad)


def test_a_nested_override_keeps_the_experiments_own_defaults(tmp_path):
    from convscope.experiments.crelu import CReLUConfig

    cfg = resolve(CReLUConfig, None, ["train.epochs=1", "lenet_train.train_subset=100"])
    assert (cfg.train.model, cfg.train.data, cfg.train.lr, cfg.train.epochs) == ("allconv-c", "fashion-mnist", 0.003, 1)
    assert (cfg.lenet_train.model, cfg.lenet_train.train_subset) == ("lenet5", 100)
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nbatch_size = 64\n")
    cfg = resolve(CReLUConfig, toml)
    assert (cfg.train.model, cfg.train.batch_size) == ("allconv-c", 64)
