"""Training pairs: sharp crops of natural images, blurred by sampled camera shake.

Schuler et al., "Learning to Deblur", TPAMI 2016, §3.3: random crops of
natural images, a blur kernel per example from the Gaussian-process sampler
(:mod:`refdeblur.camera_shake`), Gaussian noise (σ = 0.01 by default, fresh
every time an example is used) and rejection of flat crops ("less than 6
percent pixels have gradients in x- and y-direction with an absolute value
0.05 or above").

Choices where the paper is silent (derivations/camera_shake.md, §7 "Training
pairs", G14 to G16):

* grey values in [0, 1], no mean subtraction;
* 'valid' convolution: a ``(c + m - 1)²`` sharp patch gives a ``c × c``
  blurry crop with real borders, ``y = k * x`` being a true convolution;
* the sharp crop returned with ``y`` is the centre ``c × c`` part of the
  patch, the part ``y`` is aligned with;
* a crop is flat, and rejected, if fewer than 6 % of its horizontal forward
  differences or fewer than 6 % of its vertical ones reach 0.05 in absolute
  value, computed on that sharp crop;
* every random choice (image, crop position, kernel, noise) comes from the
  explicit ``numpy.random.Generator``, in this order for every example, so a
  batch is a deterministic function of the generator state.

A run draws its training batches from one generator, or, with per-example
seeding, each example from a generator of its own (:class:`ExampleSource`,
derivations/training.md, "Data-parallel training").

A run validates on a number or a fraction of its images, spread evenly over
their sorted list, or on the images of a folder of their own
(:func:`validation_split`, derivations/training.md, "Validation");
:func:`load_run_data` prepares both parts for a run's configuration and
says how it split them. A run on synthetic documents (``content`` "text")
renders its training and validation pages instead
(:mod:`refdeblur.training.documents`, derivations/fine_tuning.md).

The noise is one standard deviation for every example, or a range
``(low, high)`` from which each example draws its own, uniformly, after its
kernel (:func:`check_noise_std`, derivations/fine_tuning.md, "Noise
range"); a single value draws nothing more, so its stream is the one it
always was.
"""

import numbers
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from scipy.signal import fftconvolve

from ..camera_shake import check_kernel_size, check_rng, sample_kernel
from ..image_io import find_images, read_image
from .documents import document_images

__all__ = [
    "TrainingPair",
    "TrainingBatch",
    "gradient_fractions",
    "is_flat",
    "check_noise_std",
    "blur_valid",
    "add_noise",
    "load_gray_images",
    "load_image_folder",
    "make_pair",
    "make_batch",
    "validation_set",
    "validation_split",
    "ExampleSource",
    "RunData",
    "load_run_data",
    "CONTENTS",
    "DOCUMENT_DEFAULTS",
    "run_content",
    "document_settings",
]

NOISE_STD = 0.01
GRAD_THRESHOLD = 0.05
MIN_GRAD_FRACTION = 0.06
MAX_ATTEMPTS = 100

#: What a run trains on (``config["content"]``): ``"natural"``, crops of the
#: images of ``config["images"]``; ``"text"``, crops of synthetic document
#: pages (:mod:`refdeblur.training.documents`) rendered when the run starts.
CONTENTS = ("natural", "text")

#: ``config["documents"]`` of a run on synthetic documents: training pages,
#: validation pages and the side of a page in px.
DOCUMENT_DEFAULTS = {"pages": 64, "validation_pages": 8, "page_size": 512}


class TrainingPair(NamedTuple):
    """One example: blurry crop ``y`` (c, c), kernel ``k`` (m, m), sharp ``x`` (c, c)."""

    y: np.ndarray
    k: np.ndarray
    x: np.ndarray


class TrainingBatch(NamedTuple):
    """A batch: ``y`` (N, c, c), ``k`` (N, m, m), ``x`` (N, c, c), all float64."""

    y: np.ndarray
    k: np.ndarray
    x: np.ndarray


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------

def gradient_fractions(image, *, grad_threshold=GRAD_THRESHOLD):
    """Fractions of forward differences that reach a threshold, per direction.

    Parameters
    ----------
    image : array_like, shape (H, W)
        Grey image in [0, 1].
    grad_threshold : float, optional
        Threshold on the absolute forward difference (default 0.05).

    Returns
    -------
    (float, float)
        ``(fx, fy)``: the fraction of the ``H × (W-1)`` horizontal
        differences ``|x[i, j+1] - x[i, j]|`` and of the ``(H-1) × W``
        vertical ones that are ``>= grad_threshold``.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.training.data import gradient_fractions
    >>> gradient_fractions(np.tile([0.0, 1.0], (4, 2)))
    (1.0, 0.0)
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"need a 2-D image of at least 2x2, got shape {image.shape}")
    fx = np.mean(np.abs(np.diff(image, axis=1)) >= grad_threshold)
    fy = np.mean(np.abs(np.diff(image, axis=0)) >= grad_threshold)
    return float(fx), float(fy)


def is_flat(image, *, grad_threshold=GRAD_THRESHOLD, min_grad_fraction=MIN_GRAD_FRACTION):
    """The paper's flat-patch rule (§3.3): True means reject.

    Parameters
    ----------
    image : array_like, shape (H, W)
        The sharp crop, grey values in [0, 1].
    grad_threshold : float, optional
        Gradient magnitude that counts (default 0.05).
    min_grad_fraction : float, optional
        Required fraction in each direction (default 0.06).

    Returns
    -------
    bool
        True if fewer than ``min_grad_fraction`` of the horizontal **or** of
        the vertical forward differences reach ``grad_threshold``.

    Notes
    -----
    "Reject examples where less than 6 percent pixels have gradients in x-
    and y-direction with an absolute value 0.05 or above": read as a
    requirement on each direction separately (derivations/camera_shake.md,
    §7, G16), which rejects crops whose structure runs in one direction only
    (stripes): their blur along the stripes cannot be estimated either.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.training.data import is_flat
    >>> is_flat(np.full((32, 32), 0.5))
    True
    """
    fx, fy = gradient_fractions(image, grad_threshold=grad_threshold)
    return fx < min_grad_fraction or fy < min_grad_fraction             # (G16)


def blur_valid(patch, kernel):
    """'Valid' true convolution ``k * x`` of a sharp patch.

    Parameters
    ----------
    patch : array_like, shape (c + m - 1, c + m - 1)
        Sharp patch (any 2-D shape at least as large as the kernel).
    kernel : array_like, shape (m, m)
        Blur kernel, centre at ``(m // 2, m // 2)``.

    Returns
    -------
    numpy.ndarray
        ``(H - m + 1, W - m + 1)``; entry ``(i, j)`` is
        ``Σ_ab k[a, b] patch[i + m - 1 - a, j + m - 1 - b]``, so it is aligned
        with ``patch[i + m // 2, j + m // 2]``.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.training.data import blur_valid
    >>> blur_valid(np.ones((20, 20)), np.full((5, 5), 1 / 25)).shape
    (16, 16)
    """
    return fftconvolve(np.asarray(patch, dtype=np.float64),          # (G14)
                       np.asarray(kernel, dtype=np.float64), mode="valid")


def add_noise(y, noise_std, rng):
    """Return ``y`` plus fresh white Gaussian noise of standard deviation ``noise_std``.

    Parameters
    ----------
    y : numpy.ndarray
        Noise-free blurry image(s).
    noise_std : float
        Standard deviation on the [0, 1] scale; 0 returns a copy of ``y``
        and draws nothing from ``rng``.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    numpy.ndarray
        Float64 array of the shape of ``y``; not clipped to [0, 1] (the
        paper's model is additive Gaussian noise).

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.training.data import add_noise
    >>> add_noise(np.zeros(3), 0.0, np.random.default_rng(0))
    array([0., 0., 0.])
    """
    check_rng(rng)
    if not (np.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
    y = np.array(y, dtype=np.float64)
    if noise_std > 0:
        y += noise_std * rng.standard_normal(y.shape)                # (G15)
    return y


def check_noise_std(noise_std):
    """A noise level or range, checked: a float, or a ``(low, high)`` tuple.

    Parameters
    ----------
    noise_std : float or sequence of two floats
        One standard deviation for every example, or the range
        ``[low, high]`` each example draws its own from, uniformly.

    Returns
    -------
    float or tuple of float
        The single value; a range whose ends are equal is that single value
        (which draws nothing from the generator).

    Raises
    ------
    ValueError
        For a negative or non-finite value, a range of other than two
        values, or ``low > high``.

    Examples
    --------
    >>> from refdeblur.training.data import check_noise_std
    >>> check_noise_std(0.01), check_noise_std([0.0, 0.05]), check_noise_std((0.02, 0.02))
    (0.01, (0.0, 0.05), 0.02)
    """
    if isinstance(noise_std, numbers.Real):
        values = (float(noise_std),)
    else:
        try:
            values = tuple(float(value) for value in noise_std)
        except (TypeError, ValueError):
            raise ValueError(f"noise_std must be a number or a range (low, high), "
                             f"got {noise_std!r}") from None
        if len(values) != 2:
            raise ValueError(f"a noise range has two values (low, high), got {noise_std!r}")
    if not all(np.isfinite(value) and value >= 0 for value in values):
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
    if len(values) == 1 or values[0] == values[1]:
        return values[0]
    if values[0] > values[1]:
        raise ValueError(f"the noise range's low end {values[0]} is above its high "
                         f"end {values[1]}")
    return values


def _draw_noise_std(noise_std, rng):
    """The noise level of one example: the value, or a uniform draw in the range."""
    if isinstance(noise_std, tuple):
        return float(rng.uniform(noise_std[0], noise_std[1]))
    return noise_std


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

def load_gray_images(paths, *, min_size=0):
    """Read images as grey float64 arrays in [0, 1], skipping bad ones.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Image files.
    min_size : int, optional
        Images whose shorter side is below this are skipped (use
        ``crop_size + kernel_size - 1``).

    Returns
    -------
    list of numpy.ndarray
        One ``(H, W)`` float64 array per usable image, in the order given.

    Warns
    -----
    UserWarning
        Once, listing the files that could not be read or were too small.

    Examples
    --------
    >>> import os, skimage.data
    >>> from refdeblur.training.data import load_gray_images
    >>> folder = os.path.dirname(skimage.data.__file__)
    >>> imgs = load_gray_images([os.path.join(folder, "astronaut.png")])
    >>> imgs[0].shape
    (512, 512)
    """
    images, unreadable, small = [], [], []
    for path in paths:
        try:
            image = read_image(path, as_gray=True)
        except (OSError, ValueError, TypeError) as exc:
            unreadable.append(f"{path} ({exc})")
            continue
        if image.ndim != 2:
            unreadable.append(f"{path} (shape {image.shape})")
        elif min(image.shape) < min_size:
            small.append(f"{path} ({image.shape[0]}x{image.shape[1]})")
        else:
            images.append(image)
    if unreadable or small:
        lines = [f"unreadable: {p}" for p in unreadable[:5]]
        lines += [f"smaller than {min_size} px: {p}" for p in small[:5]]
        more = len(unreadable) + len(small) - len(lines)
        warnings.warn(
            f"skipped {len(unreadable)} unreadable and {len(small)} too-small images"
            + "".join(f"\n  {line}" for line in lines)
            + (f"\n  ... and {more} more" if more > 0 else ""), stacklevel=2)
    return images


def load_image_folder(folder, *, min_size=0):
    """Load every image below ``folder`` (recursive, sorted) as grey float64.

    Parameters
    ----------
    folder : str or os.PathLike
        Directory searched with :func:`refdeblur.image_io.find_images`.
    min_size : int, optional
        See :func:`load_gray_images`.

    Returns
    -------
    list of numpy.ndarray
        The usable images, in sorted path order.

    Raises
    ------
    ValueError
        If no usable image is found.
    """
    images = load_gray_images(find_images(folder), min_size=min_size)
    if not images:
        raise ValueError(f"no usable images (min size {min_size} px) found in {folder}")
    return images


# --------------------------------------------------------------------------
# Pairs and batches
# --------------------------------------------------------------------------

def _check_pair_sizes(crop_size, kernel_size):
    if (not isinstance(crop_size, numbers.Integral) or isinstance(crop_size, bool)
            or crop_size < 2):
        raise ValueError(f"crop_size must be an integer >= 2, got {crop_size!r}")
    return int(crop_size), check_kernel_size(kernel_size)


def _check_images(images, patch):
    if len(images) == 0:
        raise ValueError("no images given")
    for i, image in enumerate(images):
        if np.ndim(image) != 2:
            raise ValueError(f"image {i} is not 2-D (shape {np.shape(image)}); "
                             "convert colour images with image_io.rgb_to_gray")
        if not np.issubdtype(np.asarray(image).dtype, np.floating):
            # An 8-bit image would silently give values up to 255.
            raise ValueError(f"image {i} has dtype {np.asarray(image).dtype}; expected "
                             "floating-point grey values in [0, 1] (see image_io.read_image)")
        if min(np.shape(image)) < patch:
            raise ValueError(f"image {i} of shape {np.shape(image)} is smaller than the "
                             f"{patch}x{patch} patch (crop + kernel - 1); load with "
                             f"min_size={patch}")


def _draw_sharp(images, patch, crop, rng, choose_image, flat_rule, max_attempts):
    """Draw (image, position) until the aligned sharp crop is not flat."""
    r = (patch - crop) // 2
    for _ in range(max_attempts):
        image = images[rng.integers(len(images))] if choose_image else images[0]
        height, width = np.shape(image)
        top = rng.integers(height - patch + 1)
        left = rng.integers(width - patch + 1)
        sharp_patch = np.asarray(image[top:top + patch, left:left + patch],
                                 dtype=np.float64)
        sharp = sharp_patch[r:r + crop, r:r + crop]                      # (G14)
        if flat_rule is None or not is_flat(sharp, **flat_rule):
            return sharp_patch, sharp
    raise RuntimeError(
        f"all {max_attempts} crops of {crop}x{crop} px were flat (fewer than "
        f"{flat_rule['min_grad_fraction']:.0%} of gradients >= "
        f"{flat_rule['grad_threshold']}); the images carry too little structure")


def _make_pairs(images, n, crop_size, kernel_size, rng, choose_image, *, noise_std,
                reject_flat, grad_threshold, min_grad_fraction, max_attempts,
                kernel_params):
    crop, m = _check_pair_sizes(crop_size, kernel_size)
    check_rng(rng)
    noise_std = check_noise_std(noise_std)
    if not isinstance(max_attempts, numbers.Integral) or max_attempts < 1:
        raise ValueError(f"max_attempts must be a positive integer, got {max_attempts!r}")
    patch = crop + m - 1
    _check_images(images, patch)
    flat_rule = (dict(grad_threshold=grad_threshold, min_grad_fraction=min_grad_fraction)
                 if reject_flat else None)
    kernel_params = {} if kernel_params is None else dict(kernel_params)

    ys = np.empty((n, crop, crop))
    ks = np.empty((n, m, m))
    xs = np.empty((n, crop, crop))
    for i in range(n):
        # Fixed order of draws: image, position (repeated while flat), kernel,
        # noise level (a range only), noise.
        sharp_patch, xs[i] = _draw_sharp(images, patch, crop, rng, choose_image,
                                         flat_rule, max_attempts)
        ks[i] = sample_kernel(m, rng, **kernel_params)
        ys[i] = add_noise(blur_valid(sharp_patch, ks[i]),
                          _draw_noise_std(noise_std, rng), rng)
    return ys, ks, xs


def make_pair(image, crop_size, kernel_size, rng, *, noise_std=NOISE_STD,
              reject_flat=True, grad_threshold=GRAD_THRESHOLD,
              min_grad_fraction=MIN_GRAD_FRACTION, max_attempts=MAX_ATTEMPTS,
              kernel_params=None):
    """One training pair from a random crop of one image.

    Parameters
    ----------
    image : array_like, shape (H, W)
        Grey image in [0, 1], both sides at least ``crop_size + kernel_size - 1``.
    crop_size : int
        Side ``c`` of the blurry crop ``y`` and of the aligned sharp crop ``x``.
    kernel_size : int
        Side ``m`` of the kernel (odd, >= 3).
    rng : numpy.random.Generator
        Source of the crop position, the kernel and the noise.
    noise_std : float or (float, float), optional
        Standard deviation of the additive Gaussian noise (default 0.01);
        0 gives the noise-free pair; a range ``(low, high)`` draws it
        uniformly, after the kernel (:func:`check_noise_std`).
    reject_flat : bool, optional
        Apply the flat-patch rule (:func:`is_flat`) to the sharp crop and
        draw a new position while it fails (default True).
    grad_threshold, min_grad_fraction : float, optional
        Parameters of the flat-patch rule (0.05 and 0.06).
    max_attempts : int, optional
        Positions tried before giving up (default 100).
    kernel_params : dict, optional
        Keyword arguments for :func:`refdeblur.camera_shake.sample_kernel`.

    Returns
    -------
    TrainingPair
        ``(y, k, x)``: blurry noisy crop ``(c, c)``, kernel ``(m, m)``,
        sharp crop ``(c, c)``; ``y = blur_valid(P, k) + noise`` where ``P``
        is the ``(c+m-1)²`` sharp patch and ``x = P[r:r+c, r:r+c]``,
        ``r = m // 2``.

    Raises
    ------
    RuntimeError
        If ``max_attempts`` crops are all flat.

    Examples
    --------
    >>> import numpy as np, skimage.data
    >>> from refdeblur.training.data import make_pair
    >>> img = skimage.data.camera() / 255.0
    >>> y, k, x = make_pair(img, 64, 17, np.random.default_rng(0))
    >>> y.shape, k.shape, x.shape
    ((64, 64), (17, 17), (64, 64))
    """
    ys, ks, xs = _make_pairs(
        [image], 1, crop_size, kernel_size, rng, False, noise_std=noise_std,
        reject_flat=reject_flat, grad_threshold=grad_threshold,
        min_grad_fraction=min_grad_fraction, max_attempts=max_attempts,
        kernel_params=kernel_params)
    return TrainingPair(ys[0], ks[0], xs[0])


def make_batch(images, batch_size, crop_size, kernel_size, rng, *, noise_std=NOISE_STD,
               reject_flat=True, grad_threshold=GRAD_THRESHOLD,
               min_grad_fraction=MIN_GRAD_FRACTION, max_attempts=MAX_ATTEMPTS,
               kernel_params=None):
    """A batch of training pairs from random images of a collection.

    For every example an image is chosen uniformly at random, then a crop
    position; a flat crop (:func:`is_flat`) is replaced by a fresh choice of
    image and position. Then a kernel is sampled and the noise drawn.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        Grey images in [0, 1], each at least ``crop_size + kernel_size - 1``
        on both sides (see :func:`load_gray_images`'s ``min_size``).
    batch_size : int
        Number of examples ``N``.
    crop_size, kernel_size, rng, noise_std, reject_flat, grad_threshold, \
min_grad_fraction, max_attempts, kernel_params
        As in :func:`make_pair`; ``max_attempts`` counts per example.

    Returns
    -------
    TrainingBatch
        ``y`` (N, c, c), ``k`` (N, m, m), ``x`` (N, c, c), float64.

    Examples
    --------
    >>> import numpy as np, skimage.data
    >>> from refdeblur.training.data import make_batch
    >>> imgs = [skimage.data.camera() / 255.0, skimage.data.moon() / 255.0]
    >>> batch = make_batch(imgs, 3, 64, 17, np.random.default_rng(0))
    >>> batch.y.shape, batch.k.shape
    ((3, 64, 64), (3, 17, 17))
    """
    if (not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool)
            or batch_size < 0):
        raise ValueError(f"batch_size must be a non-negative integer, got {batch_size!r}")
    return TrainingBatch(*_make_pairs(
        images, int(batch_size), crop_size, kernel_size, rng, True, noise_std=noise_std,
        reject_flat=reject_flat, grad_threshold=grad_threshold,
        min_grad_fraction=min_grad_fraction, max_attempts=max_attempts,
        kernel_params=kernel_params))


def validation_set(images, n, crop_size, kernel_size, *, seed, **options):
    """A fixed set of pairs (noise included), reproducible from ``seed``.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        As in :func:`make_batch`.
    n : int
        Number of examples.
    crop_size, kernel_size : int
        As in :func:`make_batch`.
    seed : int or numpy.random.SeedSequence
        Seed of a private generator, so the set does not depend on (or
        advance) any training generator.
    **options
        Keyword arguments of :func:`make_batch` (``noise_std``, ...).

    Returns
    -------
    TrainingBatch
        Identical for identical arguments.

    Examples
    --------
    >>> import numpy as np, skimage.data
    >>> from refdeblur.training.data import validation_set
    >>> imgs = [skimage.data.camera() / 255.0]
    >>> a = validation_set(imgs, 2, 32, 9, seed=1)
    >>> b = validation_set(imgs, 2, 32, 9, seed=1)
    >>> bool(np.array_equal(a.y, b.y))
    True
    """
    return make_batch(images, n, crop_size, kernel_size, np.random.default_rng(seed),
                      **options)


# --------------------------------------------------------------------------
# The data of a run
# --------------------------------------------------------------------------

def validation_split(paths, n_held_out=60, *, fraction=None):
    """Split image paths into training and validation images.

    Every k-th path of the list (in the order given; sorted for a run) is
    held out, ``k = len(paths) / held out``, so the validation images spread
    over the whole collection.

    Parameters
    ----------
    paths : sequence
        Image paths, at least two.
    n_held_out : int, optional
        Images to hold out; clipped to ``[1, len(paths) // 2]``.
    fraction : float, optional
        Hold out ``round(fraction * len(paths))`` images instead, clipped to
        ``[1, len(paths) - 1]``; ``0 < fraction < 1``.

    Returns
    -------
    train, validation : list
        The paths of each part, in the order given.

    Raises
    ------
    ValueError
        If fewer than two paths are given, or ``fraction`` is not in (0, 1).

    Examples
    --------
    >>> from refdeblur.training.data import validation_split
    >>> validation_split(["a", "b", "c", "d", "e", "f"], 2)
    (['b', 'c', 'e', 'f'], ['a', 'd'])
    >>> validation_split(["a", "b", "c", "d", "e", "f"], fraction=0.5)
    (['b', 'd', 'f'], ['a', 'c', 'e'])
    """
    if len(paths) < 2:
        raise ValueError("need at least two images (one for validation)")
    if fraction is not None:
        if not 0 < fraction < 1:
            raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
        n_held_out = max(1, min(round(fraction * len(paths)), len(paths) - 1))
    else:
        n_held_out = max(1, min(n_held_out, len(paths) // 2))
    stride = len(paths) / n_held_out
    held = {int(i * stride) for i in range(n_held_out)}
    train = [p for i, p in enumerate(paths) if i not in held]
    validation = [p for i, p in enumerate(paths) if i in held]
    return train, validation


class ExampleSource:
    """One training example at a time, from the training images of a run.

    A plain object holding the images and the sizes, so that it can be
    pickled and sent once to the workers of a cluster.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        Grey training images in [0, 1] (as for :func:`make_batch`).
    crop_size, kernel_size : int
    noise_std : float or (float, float)
        A level or a range (:func:`check_noise_std`).

    Examples
    --------
    >>> import numpy as np, skimage.data
    >>> from refdeblur.training.data import ExampleSource
    >>> source = ExampleSource([skimage.data.camera() / 255.0], 32, 9, 0.01)
    >>> y, k = source(np.random.default_rng([0, 2, 0, 0]))
    >>> y.shape, k.shape
    ((32, 32), (9, 9))
    """

    def __init__(self, images, crop_size, kernel_size, noise_std):
        self.images = list(images)
        self.crop_size = crop_size
        self.kernel_size = kernel_size
        self.noise_std = noise_std

    def __call__(self, rng):
        """``(blurry (c, c), kernel (m, m))`` drawn from ``rng`` alone.

        The draws of :func:`make_batch` for a batch of one: image,
        position (repeated while flat), kernel, noise.
        """
        batch = make_batch(self.images, 1, self.crop_size, self.kernel_size, rng,
                           noise_std=self.noise_std)
        return batch.y[0], batch.k[0]


class RunData(NamedTuple):
    """The data of a training run (see :func:`load_run_data`).

    Attributes
    ----------
    batch_source : callable
        ``batch_source(rng, batch_size) -> (blurry (N, c, c), kernels (N, m, m))``,
        drawing all its randomness from ``rng``.
    validation : tuple of numpy.ndarray
        The fixed validation pairs ``(blurry, kernels)``.
    split : str
        One line saying which images train and which validate, and why.
    example_source : ExampleSource or None
        The same training images, one example per generator (per-example
        seeding).
    """

    batch_source: Callable
    validation: tuple
    split: str = ""
    example_source: ExampleSource = None


def _split_run_images(config):
    """``(train paths, validation paths, the line saying so)`` of a run."""
    images = Path(config["images"])
    paths = find_images(images)
    folder = config.get("validation_folder")
    if folder:
        validation_paths = find_images(Path(folder))
        if not validation_paths:
            raise ValueError(f"no images found in the validation folder {folder}")
        held = {path.resolve() for path in validation_paths}
        train_paths = [path for path in paths if path.resolve() not in held]
        left_out = len(paths) - len(train_paths)
        split = (f"{len(train_paths)} training images in {images}, "
                 f"{len(validation_paths)} validation images in {folder}")
        if left_out:
            split += f" ({left_out} of them also below {images}, left out of training)"
        return train_paths, validation_paths, split
    fraction = config.get("validation_fraction")
    train_paths, validation_paths = validation_split(
        paths, config["validation_images"], fraction=fraction)
    rule = (f"--val-fraction {fraction}, at least 1" if fraction is not None
            else f"--validation-images {config['validation_images']}, at most half")
    split = (f"{len(validation_paths)} of the {len(paths)} images in {images} held out "
             f"for validation ({rule}, spread over the sorted list), "
             f"{len(train_paths)} for training")
    return train_paths, validation_paths, split


def run_content(config):
    """What a run trains on, one of :data:`CONTENTS` (``"natural"`` without the key)."""
    content = config.get("content", "natural")
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {', '.join(CONTENTS)}, got {content!r}")
    return content


def document_settings(config):
    """``config["documents"]`` completed with :data:`DOCUMENT_DEFAULTS`."""
    settings = {**DOCUMENT_DEFAULTS, **(config.get("documents") or {})}
    unknown = set(settings) - set(DOCUMENT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown document settings {sorted(unknown)}; "
                         f"known: {', '.join(DOCUMENT_DEFAULTS)}")
    for key, value in settings.items():
        if not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"documents {key} must be a positive integer, got {value!r}")
    return settings


def _render_run_pages(config, min_size):
    """``(training pages, validation pages, the line saying so)`` of a text run.

    The training pages come from the generator ``[seed, 3]``, the
    validation pages from ``[seed, 4]``: apart from each other and from the
    run's other generators (initial weights ``[seed]``, examples
    ``[seed, 1]`` or ``[seed, 2, step, i]``), and the same at every resume.
    """
    settings = document_settings(config)
    size = settings["page_size"]
    if size < min_size:
        raise ValueError(f"document pages of {size} px are smaller than the "
                         f"{min_size} px patch (crop + kernel - 1)")
    seed = int(config["seed"])
    shape = (size, size)
    train_pages = document_images(settings["pages"], shape, np.random.default_rng([seed, 3]))
    validation_pages = document_images(settings["validation_pages"], shape,
                                       np.random.default_rng([seed, 4]))
    split = (f"{len(train_pages)} synthetic document pages of {size} px for training "
             f"(generator [{seed}, 3]), {len(validation_pages)} for validation "
             f"(generator [{seed}, 4])")
    return train_pages, validation_pages, split


def load_run_data(config):
    """Load a run's training and validation images and build its data.

    Parameters
    ----------
    config : dict
        A run's configuration (:func:`refdeblur.training.default_config`):
        ``images`` (the folder, searched recursively), the validation
        images (``validation_folder``, else ``validation_fraction``, else
        ``validation_images``, see :func:`validation_split`),
        ``kernel_size``, ``crop_size``, ``noise_std`` (a level or a range,
        :func:`check_noise_std`), ``n_validation`` and
        ``validation_seed``. With ``content`` ``"text"``, synthetic
        document pages (``documents``, :data:`DOCUMENT_DEFAULTS`) replace
        the images.

    Returns
    -------
    RunData

    Raises
    ------
    ValueError
        If fewer than two images are found, or no usable one is left on
        either side of the split, or for a bad noise level or content.
    """
    kernel_size = config["kernel_size"]
    crop = config["crop_size"]
    noise_std = check_noise_std(config["noise_std"])
    min_size = crop + kernel_size - 1
    if run_content(config) == "text":
        train_images, validation_images, split = _render_run_pages(config, min_size)
    else:
        train_paths, validation_paths, split = _split_run_images(config)
        train_images = load_gray_images(train_paths, min_size=min_size)
        validation_images = load_gray_images(validation_paths, min_size=min_size)
        if not train_images or not validation_images:
            side = "training" if not train_images else "validation"
            raise ValueError(f"no usable {side} images of at least {min_size} px "
                             f"({split})")
    validation = validation_set(validation_images, config["n_validation"], crop,
                                kernel_size, seed=config["validation_seed"],
                                noise_std=noise_std)

    def batch_source(rng, batch_size):
        batch = make_batch(train_images, batch_size, crop, kernel_size, rng,
                           noise_std=noise_std)
        return batch.y, batch.k

    return RunData(batch_source, (validation.y, validation.k), split,
                   ExampleSource(train_images, crop, kernel_size, noise_std))
