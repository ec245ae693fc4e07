"""One training step: the L2 kernel loss, the outlier rule, the update.

derivations/training.md, "Loss" and "Outliers".
"""

import dataclasses

import numpy as np

from .._engine.threads import one_blas_thread
from ..network_fast import predict

__all__ = ["OutlierFilter", "kernel_errors", "training_step"]


@dataclasses.dataclass
class OutlierFilter:
    """Skip examples whose loss is above ``factor`` times the running average.

    Paper §3.3: "we don't back-propagate examples with an error above 10
    times the current average error". The average is an exponential moving
    average of the per-example loss (decay 0.999), updated with every
    example, skipped ones included; during the first ``warmup`` examples
    nothing is skipped (derivations/training.md, "Outliers").
    """

    factor: float = 10.0
    decay: float = 0.999
    warmup: int = 500
    average: float = 0.0
    seen: int = 0

    def mask(self, losses):
        """Return a 0/1 weight per example and update the running average."""
        keep = np.ones(len(losses))
        for index, loss in enumerate(losses):
            if self.seen >= self.warmup and loss > self.factor * self.average:
                keep[index] = 0.0
            if self.seen == 0:
                self.average = float(loss)
            else:
                self.average = (self.decay * self.average
                                + (1.0 - self.decay) * float(loss))
            self.seen += 1
        return keep


def kernel_errors(net, images, true_kernels, *, n_stages=None, batch_size=8):
    """Per-example squared kernel error ``||k - k_true||^2``.

    The network runs its inference path (:func:`refdeblur.network_fast.predict`),
    as it does when deblurring.

    Parameters
    ----------
    net : refdeblur.network.Network
    images : ndarray, shape (N, c, c)
        Blurry crops.
    true_kernels : ndarray, shape (N, m, m)
    n_stages : int, optional
        Stages run at the finest scale (default all).
    batch_size : int, optional
        Examples per forward pass.

    Returns
    -------
    ndarray, shape (N,)
    """
    errors = []
    for start in range(0, len(images), batch_size):
        output = predict(net, images[start:start + batch_size], n_stages=n_stages)
        residual = output.kernel - true_kernels[start:start + batch_size]
        errors.append(np.sum(residual ** 2, axis=(1, 2)))
    return np.concatenate(errors)


def training_step(net, optimizer, outliers, blurry, true_kernels, phase, *, forced=None,
                  stage_loss_weight=0.0):
    """One optimiser step on a mini-batch.

    The loss is the mean squared kernel error over the examples the outlier
    rule keeps; only the parameters of ``phase.trainable`` are updated.

    Parameters
    ----------
    net : refdeblur.network.Network
        Updated in place.
    optimizer : Adadelta or Adam
    outliers : OutlierFilter
        Its running average is updated.
    blurry : ndarray, shape (N, c, c)
    true_kernels : ndarray, shape (N, m, m)
    phase : Phase
        Stages run and parameters updated.
    forced : dict, optional
        Teacher forcing (:func:`refdeblur.training.teacher_forcing.forced_kernels`,
        :meth:`refdeblur.network.Network.forward_with_cache`).
    stage_loss_weight : float, optional
        Weight of the kernel losses of the earlier stages of the finest
        scale (derivations/training.md, "A loss on every stage"); the
        outlier rule and the returned losses use the final kernel's.

    Returns
    -------
    losses : ndarray, shape (N,)
        Per-example squared kernel errors before the step.
    keep : ndarray, shape (N,)
        1 for the examples back-propagated, 0 for the outliers.
    """
    # One BLAS thread: refdeblur's own threads share out the work, and the
    # rounding of the matrix products must not depend on BLAS's thread count
    # (a resumed run repeats the bits of an uninterrupted one).
    with one_blas_thread():
        output, cache = net.forward_with_cache(blurry, n_stages=phase.n_stages,
                                               forced=forced)
        # in the network's precision: float64 targets would turn the backward
        # pass of a float32 network into float64 up to the first convolution
        residual = output.kernel - np.asarray(true_kernels, dtype=output.kernel.dtype)
        losses = np.sum(residual ** 2, axis=(1, 2))
        keep = outliers.mask(losses)
        if keep.sum() > 0:
            weights = keep[:, None, None] / keep.sum()
            dstage_kernels = {}
            if stage_loss_weight:
                targets = np.asarray(true_kernels, dtype=residual.dtype)
                for s, stage_kernel in enumerate(output.stage_kernels[-1][:-1]):
                    dstage_kernels[s] = (2.0 * stage_loss_weight * weights
                                         * (stage_kernel - targets)).astype(residual.dtype)
            grads, _ = net.backward((2.0 * residual * weights).astype(residual.dtype),
                                    cache, trainable=phase.trainable,
                                    dstage_kernels=dstage_kernels)
            names = [name for name in net.params
                     if name.startswith(phase.trainable)]
            optimizer.update(net.params, grads, names)
    return losses, keep
