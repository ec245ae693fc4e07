"""A worked port: stage 1 of the 17 px network in plain NumPy, checked with a trace.

This is the workflow derivations/porting.md describes, in its smallest form.
The forward pass of one stage (stage 1 of scale 1 of the shipped 17 px
network) is written again below from the derivations alone, with nothing
but NumPy: the 'valid' correlation (derivations/conv2d.md, (C1)), tanh, the
recombinations (recombine.md, (R1)), the split into sharp-like and
blurry-like maps (network.md, (N3)), the kernel quotient (kernel_quotient.md,
(K1)-(K7)) with the Barthann taper (edge_taper.md, (E1)-(E2)) and the kernel
placement (crop_pad.md, (P1)-(P3)), and the image quotient
(image_quotient.md, (I1)-(I5)). refdeblur is used only to make the trace,
whose parameters and input the port reads, and to compare.

The script writes ``trace.npz`` (``refdeblur trace --kernel-size 17``) and
``theirs.npz`` (the port's arrays under the trace's names) into ``--out``,
then runs ``refdeblur check-port trace.npz theirs.npz`` and exits with its
status. The table it prints gives the maximum absolute and relative error of
every array; all agree to about 1e-14 relative or better, far inside the default
tolerance of 1e-8. The other stages' names are missing from ``theirs.npz``,
which ``check-port`` counts and does not hold against the port.

Usage::

    python port_check_numpy_minimal.py [--out DIR] [--seed 0] [--quick]

``--quick`` is accepted for uniformity with the other scripts; the script is
quick anyway.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import refdeblur  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refdeblur.cli import main as refdeblur_main  # noqa: E402
from refdeblur.porting import make_trace, write_trace  # noqa: E402

#: The traced stage whose forward pass this script ports.
STAGE = "scale1/stage1/"


def smooth_length(n):
    """Smallest integer >= n whose only prime factors are 2, 3 and 5."""
    while True:
        rest = n
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return n
        n += 1


def barthann_ramp(width):
    """(E1): the first ``width`` points of a (2 width + 1)-point Barthann window."""
    t = np.arange(width) / (2.0 * width)
    return 0.62 - 0.48 * np.abs(t - 0.5) + 0.38 * np.cos(2.0 * np.pi * (t - 0.5))


def taper(shape, width):
    """(E2): the flat-top window, ramps of ``width`` px at every border."""
    profiles = []
    for length in shape:
        profile = np.ones(length)
        profile[:width] = barthann_ramp(width)
        profile[length - width:] = barthann_ramp(width)[::-1]
        profiles.append(profile)
    return np.outer(*profiles)


def correlate_valid(x, weight, bias):
    """(C1): multi-channel 'valid' cross-correlation, one tap at a time.

    ``x`` (C_in, H, W), ``weight`` (C_out, C_in, f, f), ``bias`` (C_out,).
    """
    f = weight.shape[-1]
    height, width = x.shape[1] - f + 1, x.shape[2] - f + 1
    out = np.zeros((weight.shape[0], height, width))
    for u in range(f):
        for v in range(f):
            out += np.einsum("oc,chw->ohw", weight[:, :, u, v],
                             x[:, u:u + height, v:v + width])
    return out + bias[:, None, None]


def place_kernel(kernel, shape):
    """(P1)-(P2): the kernel's centre at the grid origin, the rest wrapped around."""
    m = kernel.shape[0]
    rows = (np.arange(m) - m // 2) % shape[0]
    cols = (np.arange(m) - m // 2) % shape[1]
    grid = np.zeros(shape)
    grid[np.ix_(rows, cols)] = kernel
    return grid


def crop_kernel(grid, m):
    """(P3): read the centred m x m kernel off the grid."""
    rows = (np.arange(m) - m // 2) % grid.shape[0]
    cols = (np.arange(m) - m // 2) % grid.shape[1]
    return grid[np.ix_(rows, cols)]


def fourier_quotient(a, b, beta):
    """(Q1)-(Q4) with the full complex FFT: ``a``, ``b`` are (n, H, W)."""
    spectrum_a = np.fft.fft2(a)
    spectrum_b = np.fft.fft2(b)
    denominator = np.sum(np.abs(spectrum_a) ** 2, axis=0) + beta
    numerator = np.sum(np.conj(spectrum_a) * spectrum_b, axis=0)
    return np.real(np.fft.ifft2(numerator / denominator))


def kernel_quotient(x_sharp, y_blurry, *, kernel_size, taper_width, beta):
    """(K1)-(K7), every intermediate result keyed by its trace name."""
    height, width = x_sharp.shape[1:]
    window = taper((height, width), taper_width)
    grid = (smooth_length(height), smooth_length(width))
    tapered = []
    for maps in (x_sharp, y_blurry):
        padded = np.zeros((maps.shape[0],) + grid)
        padded[:, :height, :width] = maps * window                      # (K1), (K2)
        tapered.append(padded)
    quotient = fourier_quotient(tapered[0], tapered[1], beta)           # (K3), (K4)
    cropped = crop_kernel(quotient, kernel_size)                        # (K5)
    positive = np.maximum(cropped, 0.0)                                 # (K6)
    kernel = positive / (positive.sum() + 1e-8)                         # (K7)
    return {"step/window": window, "step/tapered_sharp": tapered[0],
            "step/tapered_blurry": tapered[1], "step/quotient": quotient,
            "step/cropped": cropped, "out": kernel}


def image_quotient(kernel, blurry, *, log_beta):
    """(I1)-(I5), every intermediate result keyed by its trace name."""
    m = kernel.shape[0]
    before, after = [], []
    for length in blurry.shape:
        # at least m px per side, enlarged to a 5-smooth length, split evenly
        total = smooth_length(length + 2 * m) - length
        before.append(total // 2)
        after.append(total - total // 2)
    extended = np.pad(blurry, list(zip(before, after)), mode="edge")    # (I1)
    window = taper(extended.shape, m)
    padded_blurry = extended * window                                    # (I2)
    kernel_grid = place_kernel(kernel, extended.shape)                   # (I3)
    beta_x = np.exp(log_beta)
    solution = fourier_quotient(kernel_grid[None], padded_blurry[None], beta_x)  # (I4)
    latent = solution[before[0]:before[0] + blurry.shape[0],
                      before[1]:before[1] + blurry.shape[1]]             # (I5)
    return {"step/window": window, "step/padded_blurry": padded_blurry,
            "step/kernel_grid": kernel_grid, "step/beta_x": beta_x,
            "step/solution": solution, "out": latent}


def stage_forward(blurry, params, *, kernel_size, n_pairs, taper_width, beta_k):
    """Forward pass of the first stage of the coarsest scale (N1)-(N5).

    Parameters
    ----------
    blurry : ndarray of shape (H, W)
    params : dict
        ``"conv.weight"``, ``"conv.bias"``, ``"recombine1.weight"``,
        ``"recombine2.weight"``, ``"image_quotient.log_beta"``.
    kernel_size, n_pairs, taper_width : int
    beta_k : float
        The constant β_k of the kernel quotient.

    Returns
    -------
    dict
        Arrays without batch axis, keyed by trace name below the stage.
    """
    arrays = {}
    z = correlate_valid(blurry[None], params["conv.weight"], params["conv.bias"])
    arrays["conv/out"] = z
    arrays["tanh1/out"] = z = np.tanh(z)
    arrays["recombine1/out"] = z = np.einsum("oc,chw->ohw", params["recombine1.weight"], z)
    arrays["tanh2/out"] = z = np.tanh(z)
    arrays["recombine2/out"] = z = np.einsum("oc,chw->ohw", params["recombine2.weight"], z)
    x_sharp, y_blurry = z[:n_pairs], z[n_pairs:]                         # (N3)
    arrays["kernel_quotient/in/x_sharp"] = x_sharp
    arrays["kernel_quotient/in/y_blurry"] = y_blurry
    for name, value in kernel_quotient(x_sharp, y_blurry, kernel_size=kernel_size,
                                       taper_width=taper_width, beta=beta_k).items():
        arrays[f"kernel_quotient/{name}"] = value
    kernel = arrays["kernel_quotient/out"]
    for name, value in image_quotient(kernel, blurry,
                                      log_beta=params["image_quotient.log_beta"]).items():
        arrays[f"image_quotient/{name}"] = value
    return arrays


def port_stage_one(trace):
    """Run :func:`stage_forward` on a trace's input and parameters.

    Parameters
    ----------
    trace : dict
        From :func:`refdeblur.porting.make_trace` of a 17 px network.

    Returns
    -------
    dict
        The port's arrays under their full trace names, in the trace's
        shapes (a batch axis of 1 where the trace has one).
    """
    architecture = trace["__metadata__"]["model"]["architecture"]
    if architecture["beta_k_mode"] != "constant":
        raise ValueError("this port implements the constant beta_k only")
    params = {name[len("params/scale1.stage1."):]: value for name, value in trace.items()
              if name.startswith("params/scale1.stage1.")}
    arrays = stage_forward(trace["input/blurry"][0], params,
                           kernel_size=architecture["kernel_sizes"][0],
                           n_pairs=architecture["n_pairs"][0],
                           taper_width=architecture["taper_widths"][0],
                           beta_k=architecture["beta_k"])
    # the trace keeps a batch axis of 1 on everything but the windows and β_x
    return {STAGE + name: value if name.endswith(("step/window", "step/beta_x"))
            else np.asarray(value)[None] for name, value in arrays.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for trace.npz and theirs.npz (default: the "
                             "current directory; created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trace's input")
    parser.add_argument("--quick", action="store_true",
                        help="accepted for uniformity; the script is quick anyway")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    trace = make_trace(17, seed=args.seed)
    trace_path, theirs_path = args.out / "trace.npz", args.out / "theirs.npz"
    write_trace(trace, trace_path, overwrite=True)
    np.savez(theirs_path, **port_stage_one(trace))
    print(f"wrote {trace_path} and {theirs_path}\n")
    print(f"$ refdeblur check-port {trace_path} {theirs_path}")
    return refdeblur_main(["check-port", str(trace_path), str(theirs_path)])


if __name__ == "__main__":
    sys.exit(main())
