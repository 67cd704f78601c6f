"""Element-wise activations and the softmax cross-entropy output (Qiu, *Neural Networks and Deep
Learning*, ch. 4–5; docs/REFERENCE.md §1).

An activation y = f(z) acts on each number alone, so its backward pass is the element-wise product
δ_z = f′(z) ⊙ δ_y, the f′(Zˡ) ⊙ … factor of the chapter's error recursion. Each layer caches what
its derivative needs, written in terms of the output where that is cheaper:

    ReLU     f(z) = max(0, z)          f′(z) = 1 if z > 0 else 0   (0 at z = 0, as in PyTorch)
    tanh     f(z) = tanh z             f′ = 1 − y²
    sigmoid  f(z) = 1 / (1 + e^−z)     f′ = y (1 − y)

The output layer is softmax with the cross-entropy loss, L = −(1/N) Σ_n log softmax(z_n)[y_n]; its
gradient with respect to the logits is the famously simple (softmax(z) − onehot(y)) / N.
"""

from __future__ import annotations

import numpy as np

from convscope.textbook.layers import Layer


class ReLU(Layer):
    """max(0, z); backward passes δ where z > 0 and blocks it elsewhere."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.maximum(x, 0, dtype=x.dtype)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self._mask


class Tanh(Layer):
    """tanh z; backward multiplies δ by 1 − y²."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * (1 - self._y * self._y)


class Sigmoid(Layer):
    """The logistic function 1 / (1 + e^−z); backward multiplies δ by y (1 − y)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # e^{−|z|} never overflows: for z < 0 use the equal form e^z / (1 + e^z).
        e = np.exp(-np.abs(x))
        self._y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self._y * (1 - self._y)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, computed stably (the largest logit is subtracted first)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    Example:
        >>> loss = SoftmaxCrossEntropy()
        >>> round(float(loss(np.zeros((2, 4)), np.array([0, 3]))), 4)  # log 4
        1.3863
        >>> loss.backward()[0]  # (softmax − onehot) / N
        array([-0.375,  0.125,  0.125,  0.125])
    """

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The loss −(1/N) Σ_n log softmax(z_n)[y_n] for logits (N, K) and labels (N,) in 0..K−1."""
        logp = log_softmax(logits)  # (N, K)
        self._probs, self._labels = np.exp(logp), labels
        return float(-logp[np.arange(len(labels)), labels].mean())

    def backward(self) -> np.ndarray:
        """∂L/∂logits = (softmax(z) − onehot(y)) / N, shape (N, K)."""
        grad = self._probs.copy()
        grad[np.arange(len(self._labels)), self._labels] -= 1
        return grad / len(self._labels)

    def __call__(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return self.forward(logits, labels)
