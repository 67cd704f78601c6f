"""The textbook engine: the convolution chapter of Qiu Xipeng, *Neural Networks and Deep Learning*
(ch. 5; docs/REFERENCE.md §1), in NumPy, to read beside the book and fast enough to train LeNet-5.

- conv.py: 1-D and 2-D convolution and cross-correlation, narrow/wide/same, stride, `output_size`.
- layers.py: the conv layer (im2col forward; ∂f/∂W = ∂f/∂Y ⊗ X, ∂f/∂X = rot180(W) ~⊗ ∂f/∂Y), linear, flatten.
- pool.py: max and mean pooling and their gradient routing.
- activations.py: ReLU, tanh, sigmoid, softmax cross-entropy.
- net.py: `Sequential`, `lenet5`, `SGD` with momentum, `train_numpy_lenet`.
- speed.py: the conv layer timed against PyTorch's; `blas_threads`.

Example:
    >>> import numpy as np
    >>> from convscope.textbook import conv1d, output_size
    >>> conv1d(np.array([1., 2, 3]), np.array([1., 1]), mode="wide"), output_size(3, 2, padding=1)
    (array([1., 3., 5., 3.]), 4)
"""

from convscope.textbook.activations import ReLU, Sigmoid, SoftmaxCrossEntropy, Tanh, log_softmax
from convscope.textbook.conv import conv1d, conv2d, corr1d, corr2d, mode_padding, output_size, rot180
from convscope.textbook.layers import Conv2d, Flatten, Layer, Linear, conv2d_backward_input, dilate, im2col
from convscope.textbook.net import (
    SGD,
    NumpyFit,
    NumpyTrainConfig,
    Sequential,
    batch_order,
    evaluate,
    lenet5,
    train_numpy_lenet,
)
from convscope.textbook.pool import AvgPool2d, MaxPool2d
from convscope.textbook.speed import blas_threads, conv_speed_vs_torch

__all__ = [
    "SGD", "AvgPool2d", "Conv2d", "Flatten", "Layer", "Linear", "MaxPool2d", "NumpyFit", "NumpyTrainConfig", "ReLU",
    "Sequential", "Sigmoid", "SoftmaxCrossEntropy", "Tanh", "batch_order", "blas_threads", "conv1d", "conv2d",
    "conv2d_backward_input", "conv_speed_vs_torch", "corr1d", "corr2d", "dilate", "evaluate", "im2col", "lenet5",
    "log_softmax", "mode_padding", "output_size", "rot180", "train_numpy_lenet",
]
