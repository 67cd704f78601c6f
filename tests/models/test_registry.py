"""The registry's arguments: what create_model takes, read from the constructors, checked and converted."""

from __future__ import annotations

import pytest
from torch import nn

from convscope.errors import UserError
from convscope.models import create_model, list_models, model_arguments


def test_lenet5_arguments_are_its_constructors():
    args = model_arguments("lenet5")
    # by hand, from LeNet5.__init__
    assert {k: p.default for k, p in args.items()} == {"in_channels": 1, "num_classes": 10, "activation": "relu",
                                                       "first_activation": None, "pool": "max"}


def test_a_factory_keyword_and_the_class_keywords_are_both_listed():
    assert list(model_arguments("alexnet"))[:3] == ["groups", "in_channels", "num_classes"]
    assert model_arguments("zfnet")["ceil_mode"].default is True  # ZFNet's own default, not AlexNet's
    assert create_model("zfnet", ceil_mode=False).features.pool1.ceil_mode is False


@pytest.mark.parametrize("name", list_models())
def test_every_model_lists_its_arguments(name):
    args = model_arguments(name)
    assert args is not None and {"in_channels", "num_classes"} <= set(args)


def test_strings_from_the_command_line_become_the_arguments_type():
    model = create_model("lenet5", num_classes="7", in_channels="3")
    assert model.classifier.fc3.out_features == 7 and model.features.conv1.in_channels == 3
    assert create_model("allconv-c", width="0.5", final_relu="false").features.conv1.out_channels == 48
    # a value of the right type is left alone: "none" is the name of the identity activation, not None
    assert isinstance(create_model("lenet5", first_activation="none").features.relu1, nn.Identity)
    assert isinstance(create_model("lenet5", first_activation=None).features.relu1, nn.ReLU)


@pytest.mark.parametrize("kwargs, words", [
    ({"foo": 1}, "Model lenet5 has no argument 'foo': it takes in_channels, num_classes, activation"),
    ({"num_classes": "abc"}, "num_classes must be a whole number, not 'abc'"),
    ({"in_channels": 1.5}, "in_channels must be a whole number, not 1.5"),
])
def test_a_wrong_argument_is_a_user_error(kwargs, words):
    with pytest.raises(UserError, match=words):
        create_model("lenet5", **kwargs)
