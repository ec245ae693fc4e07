"""Timings of the network's layers on this machine.

Run ``python benchmarks/bench_layers.py`` (``--quick`` for a short run,
``--calibrate`` to refit the cost model of ``Conv2D(method="auto")``).
Every time is the best of several repeats after a warm-up call (which also
compiles the Numba kernels). GFLOP/s counts 2 FLOP per multiply-add of the
*direct* method, whatever method ran, so that the rates compare like with
like; the matrix-product rate of the BLAS measured at the start is the
reference for "how close to the machine's peak".

Layout: one ``bench_*`` function per layer or comparison, each returning
table rows; :func:`main` prints them. The per-layer section at the end of
``SECTIONS`` is where other layers' timings go.
"""

import argparse
import os
import platform

from _bench_common import best_time, print_table  # this folder
import numpy as np
from scipy import signal

from refdeblur._engine import HAVE_NUMBA, conv_backends
from refdeblur._engine import conv as conv_kernels
from refdeblur.layers.conv2d import Conv2D

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def blas_gflops(dtype, size=2048, repeats=3):
    """GFLOP/s of one large square matrix product: the machine's practical peak."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    seconds = best_time(lambda: a @ b, repeats)
    return 2.0 * size ** 3 / seconds / 1e9


def conv_macs(n_batch, in_channels, out_channels, height, width, f):
    """Multiply-adds of one direct 'valid' correlation (C1)."""
    return n_batch * out_channels * in_channels * f * f * (height - f + 1) * (width - f + 1)


def _conv_problem(n_batch, in_channels, out_channels, size, f, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_batch, in_channels, size, size)).astype(dtype)
    layer = Conv2D(in_channels, out_channels, f)
    params = layer.init_params(rng, dtype)
    dout = rng.standard_normal((n_batch, out_channels, size - f + 1,
                                size - f + 1)).astype(dtype)
    return x, params, dout


def _fmt_ms(seconds):
    return f"{seconds * 1e3:.1f}"


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------

def bench_conv2d_layer(quick, blas):
    """Conv2D forward + backward per method (f = 17, C_in = 2, C_out = 32, N = 1)."""
    sizes = [128, 256] if quick else [128, 800]
    repeats = 2 if quick else 3
    rows = []
    for dtype in (np.float64, np.float32):
        for size in sizes:
            x, params, dout = _conv_problem(1, 2, 32, size, 17, dtype)
            flops = 2 * conv_macs(1, 2, 32, size, size, 17)
            for method in ("direct", "fft", "auto"):
                layer = Conv2D(2, 32, 17, method=method)
                _, cache = layer.forward(x, params)
                t_fwd = best_time(lambda: layer.forward(x, params), repeats)
                t_bwd = best_time(lambda: layer.backward(dout, cache), repeats)
                t_wgt = best_time(lambda: layer.backward(dout, cache, input_grad=False),
                                  repeats)
                label = method
                if method == "auto":
                    label += (f" (fwd {cache.method}, bwd "
                              f"{conv_backends.choose_method('backward', x.shape, 32, 17, dtype)})")
                rows.append([np.dtype(dtype).name, f"{size}²", label,
                             _fmt_ms(t_fwd), _fmt_ms(t_bwd), _fmt_ms(t_fwd + t_bwd),
                             _fmt_ms(t_wgt),
                             f"{3 * flops / (t_fwd + t_bwd) / 1e9:.1f}",
                             f"{100 * 3 * flops / (t_fwd + t_bwd) / 1e9 / blas[np.dtype(dtype)]:.0f}%"])
    print_table("Conv2D layer: forward + backward (f=17, C_in=2, C_out=32, N=1)",
                ["dtype", "image", "method", "fwd ms", "bwd ms", "fwd+bwd ms",
                 "bwd w/o dx ms", "GFLOP/s", "of BLAS"], rows)
    return rows


def bench_conv2d_passes(quick, blas):
    """Each pass of each implementation separately."""
    sizes = [128, 256] if quick else [128, 800]
    repeats = 2 if quick else 3
    rows = []
    for dtype in (np.float64, np.float32):
        for size in sizes:
            x, params, dout = _conv_problem(1, 2, 32, size, 17, dtype)
            weight = params["weight"]
            flops = 2 * conv_macs(1, 2, 32, size, size, 17)
            passes = [
                ("direct (Numba)", "forward (C1)", lambda: conv_kernels.correlate(x, weight)),
                ("direct (Numba)", "input grad (C3)", lambda: conv_kernels.input_gradient(dout, weight)),
                ("direct (Numba)", "weight grad (C4)", lambda: conv_kernels.weight_gradient(x, dout, 17)),
                ("fft", "forward (C8)", lambda: conv_backends.fft_correlate(x, weight)),
                ("fft", "both grads (C9, C10)", lambda: conv_backends.fft_backward(x, weight, dout)),
                ("fft", "weight grad (C10)", lambda: conv_backends.fft_backward(x, weight, dout, input_grad=False)),
                ("im2col + BLAS", "forward", lambda: conv_backends.im2col_correlate(x, weight)),
                ("im2col + BLAS", "input grad", lambda: conv_backends.im2col_input_gradient(dout, weight)),
                ("im2col + BLAS", "weight grad", lambda: conv_backends.im2col_weight_gradient(x, dout, 17)),
            ]
            for implementation, pass_name, function in passes:
                seconds = best_time(function, repeats)
                nominal = 2 * flops if pass_name.startswith("both") else flops
                rate = nominal / seconds / 1e9
                rows.append([np.dtype(dtype).name, f"{size}²", implementation, pass_name,
                             _fmt_ms(seconds), f"{rate:.1f}",
                             f"{100 * rate / blas[np.dtype(dtype)]:.0f}%"])
    print_table("Conv2D passes (f=17, C_in=2, C_out=32, N=1)",
                ["dtype", "image", "implementation", "pass", "ms", "GFLOP/s", "of BLAS"],
                rows)
    return rows


def bench_conv2d_forward_libraries(quick, blas):
    """Forward alone: our paths next to scipy.signal and im2col + BLAS."""
    sizes = [128, 256] if quick else [128, 800]
    repeats = 2 if quick else 3
    rows = []
    for dtype in (np.float64, np.float32):
        correlate2d_seconds_128 = None
        for size in sizes:
            x, params, _ = _conv_problem(1, 2, 32, size, 17, dtype)
            weight = params["weight"]
            flops = 2 * conv_macs(1, 2, 32, size, size, 17)
            # the correlation is a convolution with the flipped filters
            flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1])

            def scipy_fftconvolve():
                # one call, broadcasting x over the 32 filters; sum over channels
                return signal.fftconvolve(x, flipped, mode="valid", axes=(2, 3)).sum(axis=1)

            def scipy_oaconvolve():
                return signal.oaconvolve(x, flipped, mode="valid", axes=(2, 3)).sum(axis=1)

            def scipy_correlate2d():
                return [sum(signal.correlate2d(x[0, c], weight[o, c], mode="valid")
                            for c in range(2)) for o in range(32)]

            candidates = [
                ("ours: direct (Numba)", lambda: conv_kernels.correlate(x, weight), repeats),
                ("ours: fft (rfft2, workers=2)", lambda: conv_backends.fft_correlate(x, weight), repeats),
                ("im2col (sliding_window_view) + BLAS @", lambda: conv_backends.im2col_correlate(x, weight), repeats),
                ("scipy.signal.fftconvolve", scipy_fftconvolve, repeats),
                ("scipy.signal.oaconvolve", scipy_oaconvolve, repeats),
            ]
            timings = []
            for name, function, reps in candidates:
                timings.append((name, best_time(function, reps)))
            if size <= 256:
                seconds = best_time(scipy_correlate2d, 1, warmup=0)
                timings.append(("scipy.signal.correlate2d (64 2-D calls)", seconds))
                correlate2d_seconds_128 = (seconds, size)
            fastest = min(t for _, t in timings)
            for name, seconds in timings:
                rate = flops / seconds / 1e9
                rows.append([np.dtype(dtype).name, f"{size}²", name, _fmt_ms(seconds),
                             f"{seconds / fastest:.2f}", f"{rate:.1f}",
                             f"{100 * rate / blas[np.dtype(dtype)]:.0f}%"])
            if size > 256 and correlate2d_seconds_128 is not None:
                small_seconds, small_size = correlate2d_seconds_128
                estimate = small_seconds * (conv_macs(1, 2, 32, size, size, 17)
                                            / conv_macs(1, 2, 32, small_size, small_size, 17))
                rows.append([np.dtype(dtype).name, f"{size}²",
                             "scipy.signal.correlate2d (not run: too slow)",
                             f"~{estimate * 1e3:.0f} (extrapolated)", f"~{estimate / fastest:.0f}",
                             "", ""])
    print_table("Conv2D forward alone, side by side (f=17, C_in=2, C_out=32, N=1); "
                "scipy.signal.correlate(method='direct') is slower still and not run",
                ["dtype", "image", "implementation", "ms", "x fastest", "GFLOP/s", "of BLAS"],
                rows)
    return rows


def bench_conv2d_crossover(quick, blas):
    """Direct against FFT over filter and image sizes: where "auto" switches."""
    sizes = [64, 128, 256] if quick else [64, 128, 256, 512, 800]
    filters = [5, 9, 17, 25, 33] if not quick else [9, 17, 33]
    rows = []
    for dtype in (np.float64, np.float32):
        for size in sizes:
            for f in filters:
                if f > size // 2:
                    continue
                x, params, dout = _conv_problem(1, 2, 32, size, f, dtype)
                entry = [np.dtype(dtype).name, f"{size}²", str(f)]
                for pass_name in ("forward", "backward"):
                    measured = {}
                    for method in ("direct", "fft"):
                        layer = Conv2D(2, 32, f, method=method)
                        if pass_name == "forward":
                            measured[method] = best_time(lambda: layer.forward(x, params), 2)
                        else:
                            _, cache = layer.forward(x, params)
                            measured[method] = best_time(lambda: layer.backward(dout, cache), 2)
                    predicted = conv_backends.predicted_seconds(pass_name, x.shape, 32, f, dtype)
                    chosen = conv_backends.choose_method(pass_name, x.shape, 32, f, dtype)
                    faster = min(measured, key=measured.get)
                    entry += [f"{_fmt_ms(measured['direct'])} / {_fmt_ms(measured['fft'])}",
                              f"{_fmt_ms(predicted['direct'])} / {_fmt_ms(predicted['fft'])}",
                              chosen + ("" if chosen == faster else " (!)")]
                rows.append(entry)
    print_table("Direct vs FFT (ms measured / ms predicted; '(!)' marks a wrong "
                "auto choice), C_in=2, C_out=32, N=1",
                ["dtype", "image", "f", "fwd measured d/fft", "fwd predicted d/fft",
                 "auto fwd", "bwd measured d/fft", "bwd predicted d/fft", "auto bwd"], rows)
    return rows


def calibrate_conv2d(quick):
    """Fit COST_CONSTANTS of refdeblur._engine.conv_backends to timings on this machine.

    Direct: seconds per multiply-add of each kernel, the median over image
    sizes >= 128². FFT: non-negative least squares, relative to the
    measured times, of the forward, backward and weight-gradient-only
    times on the work counts of :func:`conv_backends.work_counts`. Prints the
    constants and how often the fitted rule picks the faster method.
    """
    from scipy.optimize import nnls

    sizes = [64, 128, 256] if quick else [64, 128, 256, 512, 800]
    filters = [5, 9, 17, 33]
    direct_terms = [("direct_forward", "forward"), ("direct_input", "backward"),
                    ("direct_weight", "backward")]
    fft_terms = ["fft_call", "fft_transform", "fft_product"]
    fitted = {}
    for dtype in (np.float64, np.float32):
        records = []
        for size in sizes:
            for f in filters:
                if f > size // 2:
                    continue
                x, params, dout = _conv_problem(1, 2, 32, size, f, dtype)
                weight = params["weight"]
                record = {"size": size, "f": f, "shape": x.shape}
                record["direct_forward"] = best_time(lambda: conv_kernels.correlate(x, weight), 2)
                record["direct_input"] = best_time(
                    lambda: conv_kernels.input_gradient(dout, weight), 2)
                record["direct_weight"] = best_time(
                    lambda: conv_kernels.weight_gradient(x, dout, f), 2)
                record["fft_forward"] = best_time(lambda: conv_backends.fft_correlate(x, weight), 2)
                record["fft_backward"] = best_time(
                    lambda: conv_backends.fft_backward(x, weight, dout), 2)
                record["fft_weight_gradient"] = best_time(
                    lambda: conv_backends.fft_backward(x, weight, dout, input_grad=False), 2)
                records.append(record)
        constants = {}
        for term, pass_name in direct_terms:
            constants[term] = float(np.median([
                r[term] / conv_backends.work_counts(pass_name, r["shape"], 32, r["f"])[term]
                for r in records if r["size"] >= 128]))
        counts, times = [], []
        for r in records:
            for pass_name in ("forward", "backward", "weight_gradient"):
                work = conv_backends.work_counts(pass_name, r["shape"], 32, r["f"])
                counts.append([work[t] for t in fft_terms])
                times.append(r["fft_" + pass_name])
        counts, times = np.array(counts), np.array(times)
        solution, _ = nnls(counts / times[:, None], np.ones_like(times))
        constants.update({t: float(c) for t, c in zip(fft_terms, solution)})
        fitted[np.dtype(dtype).name] = constants
        errors = np.abs(counts @ solution / times - 1.0)
        # how often would the fitted rule pick the faster method?
        right = total = 0
        for r in records:
            for pass_name, direct in (("forward", r["direct_forward"]),
                                      ("backward", r["direct_input"] + r["direct_weight"])):
                work = conv_backends.work_counts(pass_name, r["shape"], 32, r["f"])
                predicted = {m: sum(constants[t] * n for t, n in work.items()
                                    if t.startswith(m)) for m in ("direct", "fft")}
                choice = min(predicted, key=predicted.get)
                faster = "fft" if r["fft_" + pass_name] < direct else "direct"
                right += choice == faster
                total += 1
        print(f"{np.dtype(dtype).name}: FFT model relative error median "
              f"{np.median(errors):.0%}, max {errors.max():.0%}; the rule picks "
              f"the faster method in {right} of {total} cases")
    print("\n## Fitted COST_CONSTANTS (paste into refdeblur/_engine/conv_backends.py)\n")
    for name, constants in fitted.items():
        print(f"{name}: dict(" + ", ".join(f"{k}={v:.2g}" for k, v in constants.items()) + ")")
    return fitted


# ---------------------------------------------------------------------------
# per-layer timings: append other layers' bench_* functions here
# ---------------------------------------------------------------------------

def _layer_cases(size, dtype, rng):
    """(name, forward, backward) of every layer on the shapes of one stage.

    The shapes follow a second stage of the 17 px network on a ``size``²
    image: 2 input channels, 32 filters of 17 x 17, 32 hidden images, 2
    feature pairs, kernel 17 x 17.
    """
    from refdeblur.layers.crop_pad import KernelCrop, KernelPad, ReplicatePad
    from refdeblur.layers.edge_taper import EdgeTaper
    from refdeblur.layers.image_quotient import ImageQuotient
    from refdeblur.layers.kernel_quotient import KernelQuotient
    from refdeblur.layers.recombine import Recombine
    from refdeblur.layers.resample import Resample
    from refdeblur.layers.tanh import Tanh

    m, f, inner = 17, 17, size - 16
    image = rng.random((1, size, size)).astype(dtype)
    stack = rng.random((1, 2, size, size)).astype(dtype)
    hidden = rng.standard_normal((1, 32, inner, inner)).astype(dtype)
    pairs = rng.standard_normal((1, 2, inner, inner)).astype(dtype)
    kernel = rng.random((1, m, m)).astype(dtype)
    kernel /= kernel.sum()
    conv = Conv2D(2, 32, f)
    conv_params = conv.init_params(rng, dtype)
    recombine1, recombine2 = Recombine(32, 32), Recombine(32, 4)
    r1 = recombine1.init_params(rng, dtype)
    r2 = recombine2.init_params(rng, dtype)
    taper = EdgeTaper(m)
    kq = KernelQuotient(m, taper_width=m)
    iq = ImageQuotient(m)
    iq_params = iq.init_params(dtype=dtype)
    crop = KernelCrop(m)
    grid = rng.standard_normal((1, inner, inner)).astype(dtype)
    pad = KernelPad((inner, inner))
    replicate = ReplicatePad(m)
    small = int(np.ceil(size * 17 / 25))
    resample = Resample((size, size), (small, small))
    upsample = Resample((small, small), (size, size))
    coarse = rng.random((1, small, small)).astype(dtype)
    x_sharp, y_blurry = pairs, pairs + 0.1 * rng.standard_normal(pairs.shape).astype(dtype)
    return [
        ("Conv2D (2 -> 32, 17 x 17)", lambda: conv.forward(stack, conv_params),
         lambda out: conv.backward(rng.standard_normal(out[0].shape).astype(dtype), out[1])),
        ("Tanh (32 images)", lambda: Tanh().forward(hidden),
         lambda out: Tanh().backward(out[0], out[1])),
        ("Recombine 32 -> 32", lambda: recombine1.forward(hidden, r1),
         lambda out: recombine1.backward(out[0], out[1])),
        ("Recombine 32 -> 4", lambda: recombine2.forward(hidden, r2),
         lambda out: recombine2.backward(out[0], out[1])),
        ("EdgeTaper (2 images)", lambda: taper.forward(pairs),
         lambda out: taper.backward(out[0], out[1])),
        ("KernelQuotient (Eq. 4, 2 pairs)", lambda: kq.forward(x_sharp, y_blurry),
         lambda out: kq.backward(np.ones_like(out[0]), out[1])),
        ("ImageQuotient (Eq. 5)", lambda: iq.forward(kernel, image, iq_params),
         lambda out: iq.backward(out[0], out[1])),
        ("KernelCrop", lambda: crop.forward(grid),
         lambda out: crop.backward(out[0], out[1])),
        ("KernelPad", lambda: pad.forward(kernel),
         lambda out: pad.backward(out[0], out[1])),
        ("ReplicatePad", lambda: replicate.forward(image),
         lambda out: replicate.backward(out[0], out[1])),
        ("Resample down 25 -> 17", lambda: resample.forward(image),
         lambda out: resample.backward(out[0], out[1])),
        ("Resample up 17 -> 25", lambda: upsample.forward(coarse),
         lambda out: upsample.backward(out[0], out[1])),
    ]


def bench_every_layer(quick, blas):
    """Forward and backward time of every layer at 128² and 800² (float64, float32)."""
    sizes = [128, 256] if quick else [128, 800]
    repeats = 2 if quick else 3
    rows = []
    for dtype in (np.float64, np.float32):
        for size in sizes:
            rng = np.random.default_rng(0)
            for name, forward, backward in _layer_cases(size, dtype, rng):
                out = forward()
                t_fwd = best_time(forward, repeats)
                t_bwd = best_time(lambda: backward(out), repeats)
                rows.append([np.dtype(dtype).name, f"{size}²", name, _fmt_ms(t_fwd),
                             _fmt_ms(t_bwd), _fmt_ms(t_fwd + t_bwd)])
    print_table("Every layer: forward and backward on the shapes of one stage "
                "(N=1, 17 px kernel, 17 x 17 filters, 2 input channels, 32 filters)",
                ["dtype", "image", "layer", "fwd ms", "bwd ms", "fwd+bwd ms"], rows)
    return rows


#: (name, function) run in order by main(); each function takes
#: ``(quick, blas)`` where ``blas`` maps dtype -> GEMM GFLOP/s.
SECTIONS = [
    ("conv2d layer", bench_conv2d_layer),
    ("conv2d passes", bench_conv2d_passes),
    ("conv2d forward vs libraries", bench_conv2d_forward_libraries),
    ("conv2d direct vs fft", bench_conv2d_crossover),
    ("every layer", bench_every_layer),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller images and fewer repeats")
    parser.add_argument("--calibrate", action="store_true",
                        help="refit the Conv2D 'auto' cost model and exit")
    parser.add_argument("--only", default=None,
                        help="run only the sections whose name contains this")
    args = parser.parse_args(argv)

    print("# refdeblur layer benchmarks\n")
    print(f"- machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"- numpy {np.__version__}, numba "
          f"{__import__('numba').__version__ if HAVE_NUMBA else 'missing or disabled'}")
    if args.calibrate:
        calibrate_conv2d(args.quick)
        return
    blas = {np.dtype(d): blas_gflops(d, 1024 if args.quick else 2048)
            for d in (np.float64, np.float32)}
    print(f"- BLAS matrix product: {blas[np.dtype(np.float64)]:.0f} GFLOP/s float64, "
          f"{blas[np.dtype(np.float32)]:.0f} GFLOP/s float32")
    for name, function in SECTIONS:
        if args.only and args.only not in name:
            continue
        function(args.quick, blas)


if __name__ == "__main__":
    main()
