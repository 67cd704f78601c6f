"""Grad-CAM and guided Grad-CAM against Captum 0.9 and torchcam 0.5, and what an in-place ReLU after the
layer does to each."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torchcam.methods import GradCAM as TorchcamGradCAM

from convscope.errors import UserError
from convscope.explain.cam import GradCAM, GuidedGradCAM, resize
from convscope.explain.relu_rules import GuidedBackprop
from tests.explain.conftest import CAM_LAYER, zoo
from tests.usermodels import user_model


def test_gradcam_equals_captum_at_the_layers_resolution(captum_case):
    name, model, x = captum_case
    layer = CAM_LAYER[name]
    t = torch.arange(len(x)) % 10
    ours = GradCAM(model, layer).attribute(x, t, upsample=None)
    theirs = ca.LayerGradCam(model, model.get_submodule(layer)).attribute(x, target=t, relu_attributions=True)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    up = GradCAM(model, layer).attribute(x, t)
    assert up.shape == (len(x), 1, *x.shape[2:])
    torch.testing.assert_close(up, ca.LayerAttribution.interpolate(theirs, tuple(x.shape[2:]), "bilinear"),
                               atol=1e-6, rtol=1e-5)


def test_gradcam_equals_torchcam():
    model, x = zoo("lenet5")
    model.eval()
    t = [1, 4, 7]
    extractor = TorchcamGradCAM(model, target_layer="features.conv2", input_shape=(1, 28, 28))
    try:
        theirs = extractor(class_idx=t, scores=model(x), normalized=False)[0]
    finally:
        extractor.remove_hooks()
    ours = GradCAM(model, "features.conv2").attribute(x, t, upsample=None)
    torch.testing.assert_close(ours[:, 0], theirs, atol=1e-6, rtol=1e-5)


def test_an_in_place_relu_after_the_layer_does_not_change_the_map():
    # Oracle: the same network with every ReLU out of place. The map of the BatchNorm layer that an
    # in-place ReLU follows must be the map of that BatchNorm's own output.
    model, twin = user_model(functional=True).eval(), user_model(functional=True).eval()
    for m in twin.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    x = torch.rand(2, 3, 32, 32)
    ours = GradCAM(model, "stem.1").attribute(x, [2, 5], upsample=None, relu=False)
    oracle = GradCAM(twin, "stem.1").attribute(x, [2, 5], upsample=None, relu=False)
    torch.testing.assert_close(ours, oracle)
    assert (oracle < 0).any()  # the BatchNorm output has negative values, which an in-place ReLU would clip


def test_guided_gradcam_equals_captum(captum_case):
    name, model, x = captum_case
    t = torch.arange(len(x)) % 10
    layer = CAM_LAYER[name]
    ours = GuidedGradCAM(model, layer).attribute(x, t)
    theirs = ca.GuidedGradCam(model, model.get_submodule(layer)).attribute(x, target=t)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    # and it is guided backprop masked by the (nearest-upsampled) CAM: zero wherever the CAM is zero
    cam = GradCAM(model, layer).attribute(x, t, upsample="nearest")
    assert torch.equal(ours == 0, (ours == 0) | (cam == 0).expand_as(ours))
    torch.testing.assert_close(ours, GuidedBackprop(model).attribute(x, t) * cam)


def test_gradcam_of_a_unit_target_and_the_errors():
    model, x = zoo("lenet5")
    model.eval()
    cam = GradCAM(model, "features.conv1").attribute(x, ("features.conv2", 0))
    assert cam.shape == (3, 1, 28, 28) and (cam >= 0).all()
    with pytest.raises(UserError, match="does not depend on layer"):
        GradCAM(model, "features.conv2").attribute(x, ("features.conv1", 0))
    with pytest.raises(UserError, match="choose a conv layer"):
        GradCAM(model, "classifier.fc1").attribute(x, 0)
    with pytest.raises(UserError, match="did you mean"):
        GradCAM(model, "features.conv3")
    with pytest.raises(UserError, match="Unknown upsampling"):
        resize(torch.zeros(1, 1, 2, 2), (4, 4), "area")


def test_torchcam_reads_the_activations_after_an_in_place_relu_and_we_do_not():
    # torchcam keeps a reference to the layer's output, which the in-place ReLU after it then rewrites, so
    # its map mixes post-ReLU activations with pre-ReLU gradients. Where no in-place op follows (the residual
    # block's output), the two agree exactly.
    model = user_model(functional=False).eval()
    x = torch.rand(2, 3, 32, 32)
    for layer, same in (("stem.1", False), ("block", True)):
        extractor = TorchcamGradCAM(model, target_layer=layer, input_shape=(3, 32, 32))
        try:
            theirs = extractor(class_idx=[2, 5], scores=model(x), normalized=False)[0]
        finally:
            extractor.remove_hooks()
        ours = GradCAM(model, layer).attribute(x, [2, 5], upsample=None)[:, 0]
        assert torch.allclose(ours, theirs, atol=1e-7) == same, layer
