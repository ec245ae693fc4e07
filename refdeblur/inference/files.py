"""Deblurring image files: inputs, output names, the kernel picture, the report.

What ``refdeblur deblur`` does to each file, as a library: read it
(:func:`read_photo`), choose where its results go, for the whole batch
before anything is written (:func:`plan_outputs`, :data:`OUTPUT_NAMES`,
:func:`check_outputs`), deblur it and write the sharp image and a picture of
the kernel (:func:`deblur_file`), and collect a JSON report
(:func:`report_header`, :func:`write_report`). Outputs are written to a
temporary file and renamed, so there is never a partial output; an existing
file is replaced only when asked, and an input never.
"""

import time
from collections import Counter
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._version import __version__
from ..image_io import find_images, read_image_raw, write_image, write_json
from ..models import (SHIPPED_CONDITIONS, SHIPPED_KERNEL_SIZES, load_shipped_model,
                      model_sha256, shipped_model_path)
from ..nonuniform.pipeline import DEFAULT_REFINE, deblur_nonuniform, estimate_kernels_nonuniform
from .pipeline import DEFAULT_MAX_WINDOW, DeblurWarning, deblur, estimate_kernel_and_size
from .refinement import refinement_mode

__all__ = ["SHARP_SUFFIX", "KERNEL_SUFFIX", "OUTPUT_NAMES", "ImageFileError", "OutputPlan",
           "FileResult", "collect_inputs", "output_paths", "plan_outputs", "check_outputs",
           "outputs_exist", "read_photo", "kernel_image", "kernel_field_image", "deblur_file",
           "deblur_file_nonuniform", "deblur_plan", "deblur_files", "report_header",
           "write_report"]

#: Added to an input's name for its deblurred image (``photo_deblurred.jpg``).
SHARP_SUFFIX = "_deblurred"

#: Added to the deblurred image's name for the kernel picture
#: (``photo_deblurred_kernel.png``).
KERNEL_SUFFIX = "_kernel"

#: How :func:`plan_outputs` names the outputs of a batch; ``refdeblur
#: deblur --help`` prints it.
OUTPUT_NAMES = """\
output names:
  NAME.EXT gives NAME_deblurred.EXT and NAME_deblurred_kernel.png, beside the
  input or under --out-dir (which mirrors the subfolders of a folder given as
  input). When several inputs of one run would write the same name (a.png and
  a.jpg; two a.png from different folders into one --out-dir), each of them
  keeps its extension in the name: a_png_deblurred.png, a_jpg_deblurred.jpg;
  so does an input whose output name is another input or the --json report.
  A name that still clashes gets _2, _3, ... in the order of the inputs
  (a_png_2_deblurred.png). All names are decided before anything is written;
  an input given twice is deblurred once; an existing file is replaced only
  with --overwrite, an input never.
"""


class ImageFileError(Exception):
    """A problem with one input file; the message is one line naming it."""


def collect_inputs(paths):
    """Every input image: files as given, folders searched recursively.

    Parameters
    ----------
    paths : iterable of pathlib.Path
        Files and folders.

    Returns
    -------
    list of (pathlib.Path, pathlib.Path)
        ``(path, name relative to its folder)``; a file given directly is
        relative to its own folder. A file given twice (also through its
        folder) is listed once, where it first appears. Missing files are
        kept (and reported per input when read).

    Raises
    ------
    ValueError
        If a folder holds no images.
    """
    found = []
    seen = set()
    for path in paths:
        if path.is_dir():
            images = find_images(path)
            if not images:
                raise ValueError(f"no images found in folder {path}")
            candidates = [(image, image.relative_to(path)) for image in images]
        else:
            candidates = [(path, Path(path.name))]
        for image, relative in candidates:
            if _path_key(image) not in seen:
                seen.add(_path_key(image))
                found.append((image, relative))
    return found


def _path_key(path):
    """A path as compared for clashes: absolute, links resolved, case folded.

    Case is folded so that names that differ only in case, which are one
    file on case-insensitive file systems, count as a clash everywhere.
    """
    return str(Path(path).resolve()).casefold()


def output_paths(source, relative, *, out=None, out_dir=None, kernel_out=None):
    """Where the sharp image and the kernel picture of ``source`` go.

    Parameters
    ----------
    source : pathlib.Path
        The input file.
    relative : pathlib.Path
        Its name relative to the folder it was found in.
    out : pathlib.Path, optional
        The sharp image's path (one input only).
    out_dir : pathlib.Path, optional
        Folder for the outputs, mirroring the inputs' subfolders; default
        beside the input.
    kernel_out : pathlib.Path, optional
        The kernel picture's path (one input only).

    Returns
    -------
    sharp, kernel : pathlib.Path
        ``<name>_deblurred<ext>`` (PNG where ``out`` has no extension) and
        ``<sharp name>_kernel.png`` beside it, unless given.
    """
    if out is not None:
        sharp = out
    else:
        folder = out_dir / relative.parent if out_dir is not None else source.parent
        sharp = folder / f"{relative.stem}{SHARP_SUFFIX}{source.suffix}"
    if sharp.suffix == "":
        sharp = sharp.with_suffix(".png")
    kernel = (kernel_out if kernel_out is not None
              else sharp.with_name(f"{sharp.stem}{KERNEL_SUFFIX}.png"))
    return sharp, kernel


class OutputPlan(NamedTuple):
    """Where :func:`plan_outputs` sends the results of one input."""

    #: The input file.
    source: Path
    #: Its deblurred image and kernel picture.
    sharp_path: Path
    kernel_path: Path
    #: True if the default names of :func:`output_paths` clashed and were
    #: replaced (:data:`OUTPUT_NAMES`).
    renamed: bool = False


def _outputs_named(folder, label, suffix):
    sharp = folder / f"{label}{SHARP_SUFFIX}{suffix or '.png'}"
    return sharp, sharp.with_name(f"{sharp.stem}{KERNEL_SUFFIX}.png")


def plan_outputs(inputs, *, out=None, out_dir=None, kernel_out=None, reserved=()):
    """Distinct output paths for every input of a batch (:data:`OUTPUT_NAMES`).

    Decided before anything is written, so no input's outputs can replace
    another's, an input, or a file in ``reserved``.

    Parameters
    ----------
    inputs : list of (pathlib.Path, pathlib.Path)
        What :func:`collect_inputs` returns.
    out, out_dir, kernel_out : pathlib.Path, optional
        See :func:`output_paths`; ``out`` and ``kernel_out`` name the
        outputs of a single input and are used as given.
    reserved : iterable of pathlib.Path, optional
        Other files the run writes (the JSON report).

    Returns
    -------
    list of OutputPlan
        One per input, in order.

    Examples
    --------
    >>> from pathlib import Path
    >>> from refdeblur.inference.files import plan_outputs
    >>> inputs = [(Path("a.png"), Path("a.png")), (Path("a.jpg"), Path("a.jpg")),
    ...           (Path("b.png"), Path("b.png"))]
    >>> [plan.sharp_path.name for plan in plan_outputs(inputs, out_dir=Path("D"))]
    ['a_png_deblurred.png', 'a_jpg_deblurred.jpg', 'b_deblurred.png']
    """
    if out is not None or kernel_out is not None:
        return [OutputPlan(source, *output_paths(source, relative, out=out,
                                                 kernel_out=kernel_out))
                for source, relative in inputs]
    forbidden = {_path_key(path) for path in reserved}
    forbidden.update(_path_key(source) for source, _ in inputs)
    folders = [out_dir / relative.parent if out_dir is not None else source.parent
               for source, relative in inputs]
    names = [(_path_key(folder), relative.stem.casefold())
             for folder, (_, relative) in zip(folders, inputs)]
    sharing = Counter(names)
    taken = set(forbidden)
    plans = []
    for folder, name, (source, relative) in zip(folders, names, inputs):
        label = relative.stem
        paths = _outputs_named(folder, label, source.suffix)
        if sharing[name] > 1 or any(_path_key(p) in forbidden for p in paths):
            extension = source.suffix.lstrip(".")
            label = f"{relative.stem}_{extension}" if extension else relative.stem
        candidate, number = label, 1
        while any(_path_key(p) in taken
                  for p in _outputs_named(folder, candidate, source.suffix)):
            number += 1
            candidate = f"{label}_{number}"
        sharp, kernel = _outputs_named(folder, candidate, source.suffix)
        taken.update((_path_key(sharp), _path_key(kernel)))
        plans.append(OutputPlan(source, sharp, kernel, renamed=candidate != relative.stem))
    return plans


def check_outputs(source, outputs, overwrite):
    """Refuse outputs that are the input, a folder, or exist (unless ``overwrite``).

    Raises
    ------
    ImageFileError
        Naming the output and what to do.
    """
    for output in outputs:
        if output.exists() and output.resolve() == source.resolve():
            raise ImageFileError(f"{output} is the input file; refusing to overwrite it")
        if output.is_dir():
            raise ImageFileError(f"output path {output} is a folder")
        if output.exists() and not overwrite:
            raise ImageFileError(f"{output} exists; pass --overwrite to replace it")


def outputs_exist(plan):
    """True if both outputs of ``plan`` exist (as files): the input is done.

    Parameters
    ----------
    plan : OutputPlan

    Returns
    -------
    bool
    """
    return plan.sharp_path.is_file() and plan.kernel_path.is_file()


def read_photo(source):
    """An image file as stored, ``(H, W)`` or ``(H, W, C)`` with C = 2 to 4.

    Raises
    ------
    ImageFileError
        If the file is missing, cannot be decoded, or has another layout.
    """
    if not source.exists():
        raise ImageFileError(f"{source}: no such file")
    try:
        image = read_image_raw(source)
    except Exception as error:   # decoders raise many types on bad files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ImageFileError(f"{source}: cannot read the image ({reason})") from None
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
        raise ImageFileError(f"{source}: unsupported image layout {image.shape}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def kernel_image(kernel, min_side=256):
    """A kernel as an 8-bit picture, its maximum white, at least ``min_side`` px.

    Enlarged by an integer factor (nearest neighbour), so every kernel
    pixel is a visible square.

    Examples
    --------
    >>> from refdeblur.kernels import delta_kernel
    >>> from refdeblur.inference.files import kernel_image
    >>> picture = kernel_image(delta_kernel(17))
    >>> picture.shape, picture.dtype, int(picture.max())
    ((272, 272), dtype('uint8'), 255)
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    peak = kernel.max()
    scaled = kernel / peak if peak > 0 else kernel
    factor = max(1, -(-min_side // kernel.shape[0]))
    big = np.kron(scaled, np.ones((factor, factor)))
    return np.round(np.clip(big, 0, 1) * 255).astype(np.uint8)


def kernel_field_image(kernels, centres, image_shape, *, min_side=512):
    """Local kernels drawn at their patch centres on a grey canvas (paper Fig. 16).

    Each kernel is scaled to its own peak (white on black) and enlarged by
    the same integer factor (nearest neighbour); the canvas has the image's
    aspect, its longer side at least ``min_side`` px, and is large enough
    that every kernel square fills most of the distance between centres.

    Parameters
    ----------
    kernels : ndarray of shape (R, m, m)
    centres : ndarray of shape (R, 2)
        Row and column of every patch centre in the image's pixels.
    image_shape : tuple of int
        ``(H, W)`` of the image.
    min_side : int, optional

    Returns
    -------
    ndarray of shape (h, w), uint8

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.inference.files import kernel_field_image
    >>> kernels = np.zeros((2, 5, 5)); kernels[:, 2, 2] = 1
    >>> picture = kernel_field_image(kernels, [[50, 50], [50, 150]], (100, 200))
    >>> picture.shape, int(picture.max())
    ((256, 512), 255)
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    height, width = (int(n) for n in image_shape[:2])
    size = kernels.shape[-1]
    # the closest two centres on an axis set how much room a kernel has
    spacing = [np.diff(np.unique(centres[:, axis])) for axis in (0, 1)]
    room = min([float(d.min()) for d in spacing if d.size] + [float(min(height, width))])
    scale = max(min_side / max(height, width), 1.25 * size / room)
    canvas = np.full((int(round(height * scale)), int(round(width * scale))), 128, np.uint8)
    factor = max(1, int(0.8 * room * scale // size))
    side = factor * size
    for kernel, (row, col) in zip(kernels, centres):
        picture = kernel_image(kernel, min_side=side)[:side, :side]
        top = int(round((row + 0.5) * scale - side / 2))
        left = int(round((col + 0.5) * scale - side / 2))
        top = min(max(top, 0), canvas.shape[0] - side)
        left = min(max(left, 0), canvas.shape[1] - side)
        canvas[top:top + side, left:left + side] = picture
    return canvas


def deblur_file(source, sharp_path, kernel_path, *, kernel_size, model,
                max_window=DEFAULT_MAX_WINDOW, refine=True, noise="auto", content="natural",
                nonuniform=False, grid=None, **options):
    """Deblur one image file; write the sharp image and the kernel picture.

    Parameters
    ----------
    source : pathlib.Path
        The blurry image.
    sharp_path, kernel_path : pathlib.Path
        Outputs (:func:`output_paths`); their folders are created. Integer
        images keep their type; float images (e.g. float TIFF) are written
        with 16 bits.
    kernel_size : {'auto', 17, 25, 33}
        Side of the kernel window, or ``'auto'`` to choose it from the image
        (:func:`refdeblur.choose_kernel_size`).
    model : Network or None
        The network (see :func:`refdeblur.deblur`); None for the shipped one
        of the size used.
    max_window, refine, noise, content
        Of the kernel estimate (:func:`refdeblur.estimate_kernel`); the
        non-uniform estimate takes only ``noise="auto"`` and
        ``content="natural"`` and uses the generic networks.
    nonuniform : bool, optional
        Estimate one kernel per patch and deblur with them
        (:func:`deblur_file_nonuniform`, which ``grid`` goes to).
    **options
        ``method`` and ``noise_std`` of :func:`refdeblur.deblur`.

    Returns
    -------
    dict
        The file's entry of the report: paths, shape, type, seconds, the
        :class:`DeblurWarning` messages, the kernel size used with how it
        was chosen (``kernel_size_choice``: mode, reason, measured support
        in px, the network measured), the photo's noise and content with the
        network used (``condition``,
        :meth:`refdeblur.inference.PhotoCondition.as_dict`), the refinement
        mode and the kernel.

    Raises
    ------
    ImageFileError
        If the image cannot be read or deblurred.
    OSError
        If an output cannot be written.
    """
    if nonuniform:
        if noise != "auto" or content != "natural":
            raise ImageFileError(f"{source}: noise={noise!r} and content={content!r} "
                                 f"are not available for the non-uniform estimate")
        return deblur_file_nonuniform(source, sharp_path, kernel_path, kernel_size=kernel_size,
                                      model=model, grid=grid, max_window=max_window,
                                      refine=refine, **options)
    image = read_photo(source)
    channel_axis = -1 if image.ndim == 3 else None
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeblurWarning)
        try:
            kernel, choice = estimate_kernel_and_size(
                image, kernel_size, channel_axis=channel_axis, model=model,
                max_window=max_window, refine=refine, noise=noise, content=content)
            sharp, kernel = deblur(image, channel_axis=channel_axis, model=model,
                                   kernel=kernel, **options)
        except ValueError as error:
            raise ImageFileError(f"{source}: {error}") from None
    seconds = time.perf_counter() - started
    messages = [str(w.message) for w in caught if issubclass(w.category, DeblurWarning)]
    for other in caught:    # recording must not hide them (e.g. numba is missing)
        if not issubclass(other.category, DeblurWarning):
            warnings.warn_explicit(other.message, other.category, other.filename,
                                   other.lineno)
    if sharp.dtype not in (np.uint8, np.uint16):
        sharp = np.round(np.clip(sharp, 0, 1) * 65535).astype(np.uint16)
    for path in (sharp_path, kernel_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_image(sharp_path, sharp)
    write_image(kernel_path, kernel_image(kernel))
    return {
        "input": str(source), "output": str(sharp_path),
        "kernel_png": str(kernel_path), "shape": list(image.shape),
        "dtype": str(image.dtype), "seconds": round(seconds, 3),
        "warnings": messages, "kernel_size": choice.kernel_size,
        "kernel_size_choice": choice.as_dict(),
        "condition": choice.condition.as_dict(),
        "refinement": (refinement_mode(refine, model if model is not None
                                       else load_shipped_model(choice.kernel_size))
                       if choice.condition.refined else "none"),
        "kernel": np.round(kernel, 8).tolist(),
    }


def _write_outputs(sharp_path, sharp, kernel_path, kernel_picture):
    if sharp.dtype not in (np.uint8, np.uint16):
        sharp = np.round(np.clip(sharp, 0, 1) * 65535).astype(np.uint16)
    for path in (sharp_path, kernel_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_image(sharp_path, sharp)
    write_image(kernel_path, kernel_picture)


def deblur_file_nonuniform(source, sharp_path, field_path, *, kernel_size, model, grid=None,
                           max_window=DEFAULT_MAX_WINDOW, refine=DEFAULT_REFINE,
                           method="hyper_laplacian", noise_std=None):
    """Deblur one image file whose blur changes across it; write the image and the kernel field.

    Parameters
    ----------
    source : pathlib.Path
        The blurry image.
    sharp_path, field_path : pathlib.Path
        Outputs: the deblurred image and the picture of the local kernels at
        their patch positions (:func:`kernel_field_image`).
    kernel_size : {'auto', 17, 25, 33}
    model : Network or None
    grid : tuple of int, optional
        ``(rows, cols)`` of patches (default: that of
        :func:`refdeblur.nonuniform.pipeline.fit_grid`).
    max_window, refine, noise_std
        Of :func:`refdeblur.deblur_nonuniform`.
    method : {'hyper_laplacian'}
        The only non-blind deconvolution under the EFF model.

    Returns
    -------
    dict
        The report entry of :func:`deblur_file`, with ``nonuniform``: the
        grid, the patch centres, the number of camera poses of the
        projection, the projection's method and ``eta``, the seconds of the
        estimate and of the deconvolution, and the local kernels.

    Raises
    ------
    ImageFileError
        If the image cannot be read or deblurred, or the grid does not fit it
        (nothing is written).
    OSError
        If an output cannot be written.
    """
    if method != "hyper_laplacian":
        raise ImageFileError(f"{source}: the non-uniform path deconvolves with the "
                             f"hyper-Laplacian prior only, not {method!r}")
    image = read_photo(source)
    channel_axis = -1 if image.ndim == 3 else None
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeblurWarning)
        try:
            estimate = estimate_kernels_nonuniform(image, kernel_size, grid=grid,
                                                   channel_axis=channel_axis, model=model,
                                                   max_window=max_window, refine=refine)
            estimated = time.perf_counter()
            sharp, _ = deblur_nonuniform(image, channel_axis=channel_axis, estimate=estimate,
                                         noise_std=noise_std)
        except ValueError as error:
            raise ImageFileError(f"{source}: {error}") from None
    finished = time.perf_counter()
    messages = [str(w.message) for w in caught if issubclass(w.category, DeblurWarning)]
    for other in caught:    # recording must not hide them (e.g. numba is missing)
        if not issubclass(other.category, DeblurWarning):
            warnings.warn_explicit(other.message, other.category, other.filename,
                                   other.lineno)
    _write_outputs(sharp_path, sharp, field_path,
                   kernel_field_image(estimate.kernels, estimate.centres, image.shape[:2]))
    net = model if model is not None else load_shipped_model(estimate.kernel_size)
    return {
        "input": str(source), "output": str(sharp_path),
        "kernel_png": str(field_path), "shape": list(image.shape),
        "dtype": str(image.dtype), "seconds": round(finished - started, 3),
        "warnings": messages, "kernel_size": estimate.kernel_size,
        "kernel_size_choice": estimate.choice.as_dict(),
        "refinement": refinement_mode(refine, net),
        "nonuniform": {
            "grid": list(estimate.grid),
            "centres": np.round(estimate.centres, 3).tolist(),
            "pose_count": None if estimate.poses is None else len(estimate.poses),
            "projection": estimate.projection,
            "seconds_estimate": round(estimated - started, 3),
            "seconds_deconvolution": round(finished - estimated, 3),
            "kernels": np.round(estimate.kernels, 8).tolist(),
        },
    }


class FileResult(NamedTuple):
    """What :func:`deblur_files` did with one input."""

    #: The input file.
    source: Path
    #: Where its sharp image and kernel picture go (or would have gone).
    sharp_path: Path
    kernel_path: Path
    #: The report entry of :func:`deblur_file`; None if the input failed.
    record: dict = None
    #: One line saying why the input failed; None if it succeeded.
    error: str = None
    #: True if the input was left alone because its outputs exist (a rerun
    #: of a batch on a cluster, :mod:`refdeblur.distributed.deblurring`).
    skipped: bool = False


def deblur_plan(plan, *, overwrite=False, **options):
    """Deblur the input of one :class:`OutputPlan`; report a failure, never raise it.

    Parameters
    ----------
    plan : OutputPlan
    overwrite : bool, optional
        Replace existing outputs (never an input).
    **options
        ``kernel_size``, ``model`` and the options of :func:`deblur_file`.

    Returns
    -------
    FileResult
        With the report entry, or the one line saying why the input failed
        (it cannot be read or deblurred, an output exists or cannot be
        written).
    """
    source, sharp_path, kernel_path, _ = plan
    try:
        check_outputs(source, (sharp_path, kernel_path), overwrite)
        record = deblur_file(source, sharp_path, kernel_path, **options)
    except ImageFileError as error:
        return FileResult(source, sharp_path, kernel_path, error=str(error))
    except OSError as error:
        return FileResult(source, sharp_path, kernel_path,
                          error=f"{source}: cannot write the output "
                                f"({error.strerror or error})")
    return FileResult(source, sharp_path, kernel_path, record=record)


def deblur_files(plans, *, overwrite=False, **options):
    """Deblur image files one after the other; a failing input stops no other.

    Parameters
    ----------
    plans : list of OutputPlan
        What :func:`plan_outputs` returns.
    overwrite : bool, optional
        Replace existing outputs (never an input).
    **options
        ``kernel_size``, ``model`` and the options of :func:`deblur_file`.

    Yields
    ------
    FileResult
        One per input, in order, as soon as it is done (:func:`deblur_plan`).
    """
    for plan in plans:
        yield deblur_plan(plan, overwrite=overwrite, **options)


def report_header(model, model_path, *, kernel_size, method, noise_std, max_window, refine,
                  noise="auto", content="natural"):
    """The report's fields common to all images; ``images`` starts empty.

    Records the version, the model file and its SHA-256, and the
    parameters, with the refinement mode the model gets
    (:func:`refdeblur.inference.refinement.refinement_mode`). Without a
    model (the shipped networks: each image's network is chosen from its
    blur and noise) ``model``, ``model_sha256`` and the refinement are None
    and ``models`` lists every shipped network with its condition (None for
    the generic ones) and SHA-256; each image's entry names its kernel
    size, network and refinement (:func:`deblur_file`).
    """
    if model is None:
        shipped = [(size, None) for size in SHIPPED_KERNEL_SIZES] + [
            (size, condition) for condition, sizes in SHIPPED_CONDITIONS.items()
            for size in sizes]
        models = {"models": [{"kernel_size": size, "condition": condition,
                              "path": str(shipped_model_path(size, condition)),
                              "sha256": model_sha256(shipped_model_path(size, condition))}
                             for size, condition in shipped]}
        model_fields = {"model": None, "model_sha256": None, **models}
        refinement = None
    else:
        model_fields = {"model": str(model_path), "model_sha256": model_sha256(model_path)}
        refinement = refinement_mode(refine, model)
    return {"refdeblur_version": __version__, **model_fields,
            "parameters": {"kernel_size": kernel_size, "method": method,
                           "noise_std": noise_std, "max_window": max_window,
                           "refine": refine, "noise": noise, "content": content,
                           "refinement": refinement},
            "images": []}


def write_report(path, report):
    """Write the report as indented JSON, atomically; creates the folder."""
    write_json(path, report)
