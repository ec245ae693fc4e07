"""``kernel_size="auto"`` and the border warning, measured.

Run ``python benchmarks/bench_kernel_size.py [--data LEVIN_DATA] [--quick]``
(``--data`` defaults to the environment variable ``REFDEBLUR_LEVIN_DATA``,
else ``../shared/data/levin2009``; its ``original_mat/`` subfolder is used
when the folder itself holds no case). Three sections:

(a) **Levin et al.'s 32 real blurs.** Per case the size ``auto`` chooses
    (:func:`refdeblur.choose_kernel_size`: the refined 33 px estimate's
    support, values >= 20 % of its peak, plus 2 px on every side, picks the
    smallest window that holds it) and the error ratio of each choice,
    with the deconvolution and scoring of ``refdeblur bench levin``
    (:mod:`refdeblur.evaluation.levin`); then the counts at ER <= 3 and
    ER <= 2 of ``auto``, of each fixed size for every case and of the
    oracle of ``refdeblur bench levin --kernel-size oracle`` (the smallest
    window >= the true kernel's size), and the seconds per estimate.
(b) **Sampled camera shake.** One kernel per size 9, 13, ..., 33 (every
    odd size 9 to 33 with ``--all-sizes``; :func:`refdeblur.sample_kernel`)
    on each of five scikit-image photos
    (camera, astronaut, coffee, chelsea, rocket; grey, the central 256 px),
    blurred with 'valid' borders, plus 1 % Gaussian noise. Per size: how
    often ``auto`` chose each network, its truncations (the true support,
    values >= 1 % of the peak, wider than the chosen window), and the mean
    kernel error and PSNR (:mod:`refdeblur.metrics`, up to shift, Levin's
    crop) of ``auto``, of each fixed size and of the true kernel. The
    ``brick`` image is left out: no network estimates a blur on its
    periodic texture (error ratios above 20 at every size and window).
(c) **The border warning** (:func:`refdeblur.kernels.blur_exceeds_window`,
    what :func:`refdeblur.estimate_kernel` warns on) on the kernels the 17
    and 25 px networks return for the pairs of (b) and for larger ones
    (35 to 41 px), refinement on and off: the false-positive rate (the
    true support fits the window with 2 px to spare, or fits at all, and
    the rule fires) and the false-negative rate (the true support is wider
    than the window and the rule is silent); beside it the rule it
    replaces (more than 3 % of the mass in the outer ring). Last, the
    warning of the default, ``kernel_size="auto"``, which warns only where
    it chose the largest window (where the chosen window is smaller, the
    33 px estimate's measured support holds the blur): false positives
    over the blurs that fit their chosen window, false negatives over
    those wider than 33 px.

``--quick`` runs 4 Levin cases, sizes 9, 17, 25, 33 and two photos: a smoke
run, not a measurement. The default run takes about 10 minutes on two
loaded cores, ``--all-sizes`` about twice as long.
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from _bench_common import print_table
from refdeblur import DeblurWarning, estimate_kernel, sample_kernel
from refdeblur.evaluation.levin import (deconvolve_for_benchmark, find_cases, image_scores,
                                        load_case, oracle_kernel_size)
from refdeblur.inference import estimate_kernel_and_size
from refdeblur.kernels import blur_exceeds_window, kernel_border_mass, kernel_support_radius
from refdeblur.metrics import kernel_error_up_to_shift
from refdeblur.models import SHIPPED_KERNEL_SIZES

#: The pairs of (b): photos, central crop, noise.
PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket")
CROP = 256
NOISE_STD = 0.01

#: A true kernel's support: values of at least this share of its peak
#: (the sampler's smoothing leaves fainter tails around the trajectory).
TRUE_SUPPORT_THRESHOLD = 0.01

#: The rule that :func:`blur_exceeds_window` replaces, for comparison.
OLD_BORDER_MASS = 0.03

#: Networks whose warning section (c) measures.
WARNED_SIZES = (17, 25)


def default_data_dir():
    """``REFDEBLUR_LEVIN_DATA`` or ``../shared/data/levin2009``; its
    ``original_mat`` subfolder where the folder itself holds no case."""
    folder = Path(os.environ.get("REFDEBLUR_LEVIN_DATA", "../shared/data/levin2009"))
    if not list(folder.glob("*.mat")) and (folder / "original_mat").is_dir():
        return folder / "original_mat"
    return folder


def true_support_px(kernel):
    """Side of the centred square that holds a true kernel's support."""
    return 2 * kernel_support_radius(kernel, TRUE_SUPPORT_THRESHOLD) + 1


def border_warned(function, *args, **kwargs):
    """``function(*args, **kwargs)`` and whether it warned that the blur reaches the border."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeblurWarning)
        value = function(*args, **kwargs)
    return value, any(issubclass(w.category, DeblurWarning) and "border" in str(w.message)
                      for w in caught)


def quiet(function, *args, **kwargs):
    """Call ``function`` with refdeblur's DeblurWarnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeblurWarning)
        return function(*args, **kwargs)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = quiet(function, *args, **kwargs)
    return result, time.perf_counter() - started


# ---------------------------------------------------------------------------
# (a) Levin et al.

def levin_section(data_dir, quick):
    rows = find_cases(data_dir)
    if quick:
        rows = rows[::8]
    ratios = {key: [] for key in ("auto", *SHIPPED_KERNEL_SIZES, "oracle")}
    seconds = {key: [] for key in ("auto", *SHIPPED_KERNEL_SIZES)}
    table = []
    for row in rows:
        blurry, sharp, true_kernel = load_case(data_dir, row)
        ssd_true = image_scores(deconvolve_for_benchmark(blurry, true_kernel), sharp)["ssd"]
        kernels, errors = {}, {}
        for size in SHIPPED_KERNEL_SIZES:
            kernels[size], spent = timed(estimate_kernel, blurry, size)
            seconds[size].append(spent)
            deblurred = deconvolve_for_benchmark(blurry, kernels[size])
            errors[size] = image_scores(deblurred, sharp)["ssd"] / ssd_true
        (kernel, choice), spent = timed(estimate_kernel_and_size, blurry)
        seconds["auto"].append(spent)
        chosen = choice.kernel_size
        # The auto path runs the same estimate as the fixed size it chose.
        assert np.array_equal(kernel, kernels[chosen]), row["file"]
        oracle = oracle_kernel_size(true_kernel.shape[0], SHIPPED_KERNEL_SIZES)
        for size in SHIPPED_KERNEL_SIZES:
            ratios[size].append(errors[size])
        ratios["auto"].append(errors[chosen])
        ratios["oracle"].append(errors[oracle])
        table.append([row["file"], str(true_kernel.shape[0]), str(oracle),
                      str(choice.support_px), str(chosen),
                      *(f"{errors[size]:.2f}" for size in SHIPPED_KERNEL_SIZES),
                      f"{errors[chosen]:.2f}"])
        print(f"  {row['file']}: auto {chosen} px, ER {errors[chosen]:.2f}", file=sys.stderr)
    print_table("(a) Levin et al. 2009: the size chosen per case",
                ["case", "true size", "oracle", "33 px support", "auto", "ER 17",
                 "ER 25", "ER 33", "ER auto"], table,
                "oracle: the smallest shipped window >= the true kernel's size "
                "(`refdeblur bench levin --kernel-size oracle`); 33 px support: side of the centred "
                "square holding the refined 33 px estimate's values >= 20 % of its "
                "peak; ER: error ratio, the deconvolution and scoring of `refdeblur "
                "bench levin`.")
    summary = []
    labels = {"auto": "auto (chosen from the image)", "oracle": "oracle (true kernel size)"}
    for key, values in ratios.items():
        values = np.array(values)
        label = labels.get(key, f"{key} px for every case")
        spent = (f"{np.mean(seconds[key]):.2f}" if key in seconds else "")
        summary.append([label, f"{int((values <= 3).sum())}/{len(values)}",
                        f"{int((values <= 2).sum())}/{len(values)}", f"{values.mean():.2f}",
                        spent])
    print_table("(a) Levin et al. 2009: counts", ["kernel size", "ER <= 3", "ER <= 2",
                                                  "mean ER", "s / estimate"], summary)


# ---------------------------------------------------------------------------
# (b) and (c): sampled camera shake

def photos(names):
    from skimage import color, data
    grey = {}
    for name in names:
        image = getattr(data, name)()
        if image.ndim == 3:
            image = color.rgb2gray(image[..., :3])
        else:
            image = image / 255.0
        grey[name] = np.asarray(image, dtype=np.float64)
    return grey


def blurred_pair(image, kernel, rng):
    """The central ``CROP`` px of ``image`` blurred ('valid') and noisy, and its sharp crop."""
    size = kernel.shape[0]
    side = CROP + size - 1
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    sharp_large = image[top:top + side, left:left + side]
    blurry = fftconvolve(sharp_large, kernel, mode="valid")
    blurry = np.clip(blurry + NOISE_STD * rng.standard_normal(blurry.shape), 0.0, 1.0)
    half = size // 2
    return blurry, sharp_large[half:half + CROP, half:half + CROP]


def synthetic_pairs(images, sizes, rng):
    """``(size, photo name, kernel, blurry, sharp)`` for every size and photo."""
    for size in sizes:
        for name, image in images.items():
            kernel = sample_kernel(size, rng)
            yield (size, name, kernel, *blurred_pair(image, kernel, rng))


def score(blurry, sharp, kernel, true_kernel):
    deblurred = deconvolve_for_benchmark(blurry, kernel)
    return (image_scores(deblurred, sharp)["psnr_db"],
            kernel_error_up_to_shift(kernel, true_kernel))


def run_pair(size, name, true_kernel, blurry, sharp, with_auto):
    """Every estimate and score of one pair (sections b and c)."""
    result = {"size": size, "photo": name, "support": true_support_px(true_kernel),
              "refined": {}, "plain": {}}
    for window in SHIPPED_KERNEL_SIZES if with_auto else WARNED_SIZES:
        result["refined"][window] = quiet(estimate_kernel, blurry, window)
    for window in WARNED_SIZES:
        result["plain"][window] = quiet(estimate_kernel, blurry, window, refine=False)
    started = time.perf_counter()
    (kernel, choice), result["auto_warned"] = border_warned(estimate_kernel_and_size, blurry)
    result["auto_seconds"] = time.perf_counter() - started
    if not with_auto:
        return result
    result["auto"] = choice.kernel_size
    assert np.array_equal(kernel, result["refined"][choice.kernel_size])
    result["scores"] = {window: score(blurry, sharp, result["refined"][window], true_kernel)
                        for window in SHIPPED_KERNEL_SIZES}
    result["scores"]["true"] = (score(blurry, sharp, true_kernel, true_kernel)[0], 0.0)
    return result


def synthetic_section(results):
    table = []
    for size in sorted({r["size"] for r in results if "auto" in r}):
        of_size = [r for r in results if r["size"] == size and "auto" in r]
        chosen = [r["auto"] for r in of_size]
        truncated = sum(r["support"] > r["auto"] for r in of_size)
        psnr = {key: np.mean([r["scores"][key if key != "auto" else r["auto"]][0]
                              for r in of_size])
                for key in ("auto", *SHIPPED_KERNEL_SIZES, "true")}
        kernel_error = {key: np.mean([r["scores"][key if key != "auto" else r["auto"]][1]
                                      for r in of_size])
                        for key in ("auto", *SHIPPED_KERNEL_SIZES)}
        table.append([str(size), f"{min(r['support'] for r in of_size)}-"
                                 f"{max(r['support'] for r in of_size)}",
                      "/".join(str(chosen.count(window)) for window in SHIPPED_KERNEL_SIZES),
                      str(truncated),
                      *(f"{kernel_error[key]:.4f}" for key in ("auto", *SHIPPED_KERNEL_SIZES)),
                      *(f"{psnr[key]:.2f}" for key in ("auto", *SHIPPED_KERNEL_SIZES, "true"))])
    everything = [r for r in results if "auto" in r]
    total_truncated = sum(r["support"] > r["auto"] for r in everything)
    mean_psnr = {key: np.mean([r["scores"][key if key != "auto" else r["auto"]][0]
                               for r in everything])
                 for key in ("auto", *SHIPPED_KERNEL_SIZES, "true")}
    seconds = np.mean([r["auto_seconds"] for r in everything])
    print_table("(b) Sampled camera shake: the size chosen per kernel size",
                ["sampled size", "true support px", "chose 17/25/33", "truncated",
                 "kernel error auto", "17", "25", "33", "PSNR auto", "17", "25", "33",
                 "true kernel"], table,
                f"{len(everything)} pairs: truncated {total_truncated} (true support, values "
                f">= 1 % of the peak, wider than the chosen window); mean PSNR auto "
                f"{mean_psnr['auto']:.2f} dB, fixed 17 / 25 / 33 px "
                f"{mean_psnr[17]:.2f} / {mean_psnr[25]:.2f} / {mean_psnr[33]:.2f} dB, true "
                f"kernel {mean_psnr['true']:.2f} dB; auto takes {seconds:.2f} s per "
                f"estimate. Kernel error and PSNR up to shift (Levin's crop), the "
                f"deconvolution of `refdeblur bench levin`.")


def rate(flags, silent=False):
    """``"count/total (share)"`` of the flags set (``silent``: of those not set)."""
    if not flags:
        return "-"
    count = sum((not f) if silent else f for f in flags)
    return f"{count}/{len(flags)} ({count / len(flags):.0%})"


def warning_section(results):
    rules = {"blur_exceeds_window": blur_exceeds_window,
             f"border mass > {OLD_BORDER_MASS:g} (for comparison)":
                 lambda kernel: kernel_border_mass(kernel) > OLD_BORDER_MASS}
    table = []
    for rule_name, rule in rules.items():
        for window in WARNED_SIZES:
            for refined in (True, False):
                kind = "refined" if refined else "plain"
                fired = [(r["support"], rule(r[kind][window])) for r in results]
                roomy = [f for s, f in fired if s <= window - 4]
                fitting = [f for s, f in fired if s <= window]
                larger = [f for s, f in fired if s > window]
                table.append([rule_name, f"{window} px", "on" if refined else "off",
                              rate(roomy), rate(fitting), rate(larger, silent=True)])
    # The default: the chosen window; every blur of (b) fits it (0 truncated).
    chosen = [r for r in results if "auto" in r]
    roomy = [r["auto_warned"] for r in chosen if r["support"] <= r["auto"] - 4]
    fitting = [r["auto_warned"] for r in chosen if r["support"] <= r["auto"]]
    larger = [r["auto_warned"] for r in results if r["support"] > max(SHIPPED_KERNEL_SIZES)]
    table.append(["auto: warn where the largest window is chosen", "chosen", "on",
                  rate(roomy), rate(fitting), rate(larger, silent=True)])
    # For comparison: blur_exceeds_window on whichever window auto chose.
    on_chosen = [(r["support"], r["auto"], blur_exceeds_window(r["refined"][r["auto"]]))
                 for r in chosen]
    table.append(["auto: blur_exceeds_window on every chosen window (for comparison)",
                  "chosen", "on", rate([f for s, w, f in on_chosen if s <= w - 4]),
                  rate([f for s, w, f in on_chosen if s <= w]), "-"])
    print_table("(c) The border warning: false positives and false negatives",
                ["rule", "network", "refinement", "FP: fits with 2 px to spare",
                 "FP: fits", "FN: larger than the window"], table,
                "fits: the true support (values >= 1 % of the peak) is at most the window "
                "(with 2 px to spare: at most the window - 4 px); larger: it is wider "
                "than the window. FP: the rule fires on a kernel that fits; FN: it is "
                "silent on one that is larger. Pairs of (b) plus sampled sizes 35 to 41.")


def header(data_dir, flags):
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True,
                                cwd=Path(__file__).resolve().parents[1]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    print("# kernel_size='auto' and the border warning\n")
    print(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}, commit "
          f"{commit} (working tree), {platform.platform()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"- command: python benchmarks/bench_kernel_size.py --data {data_dir}{flags}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of Levin et al.'s .mat files (default "
                             "$REFDEBLUR_LEVIN_DATA or ../shared/data/levin2009)")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--all-sizes", action="store_true",
                        help="(b) with every odd kernel size 9 to 33, not every 4 px")
    parser.add_argument("--seed", type=int, default=20261204)
    args = parser.parse_args(argv)
    data_dir = args.data if args.data is not None else default_data_dir()
    started = time.perf_counter()
    header(data_dir, " --quick" * args.quick + " --all-sizes" * args.all_sizes)
    levin_section(data_dir, args.quick)

    rng = np.random.default_rng(args.seed)
    images = photos(PHOTOS[:2] if args.quick else PHOTOS)
    sizes = ((9, 17, 25, 33) if args.quick
             else tuple(range(9, 34, 2 if args.all_sizes else 4)))
    larger = (37,) if args.quick else (35, 37, 39, 41)
    results = []
    for pair in synthetic_pairs(images, sizes, rng):
        results.append(run_pair(*pair, with_auto=True))
        print(f"  {pair[0]} px on {pair[1]}: auto {results[-1]['auto']} px", file=sys.stderr)
    for pair in synthetic_pairs(images, larger, rng):
        results.append(run_pair(*pair, with_auto=False))
    synthetic_section(results)
    warning_section(results)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
