"""Every bad input of issue 3, item 8, through the command line; prints a table.

Run from the repository root: ``python benchmarks/results/session8-2026-11-28/bad_inputs.py``.
Each case is made in a fresh temporary folder and run as
``python -m refdeblur deblur ...`` in a child process. The table gives the
exit status, the whole of stderr, whether a traceback appeared, and the
files the run added or changed in the folder (none is wanted when the
status is 2).
"""

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np


def photo(rng, shape=(72, 80, 3)):
    from skimage import data, transform
    return (transform.resize(data.astronaut(), shape, anti_aliasing=True) * 255).astype(np.uint8)


def snapshot(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cases(folder, rng):
    good = folder / "photo.png"
    iio.imwrite(good, photo(rng, (120, 128, 3)))
    made = {}

    def case(name, args, prepare=None):
        made[name] = (args, prepare)

    case("missing path", ["missing.png"])
    case("folder without images", ["empty_folder"], lambda: (folder / "empty_folder").mkdir())
    case("text file named .png", ["notes.png"],
         lambda: (folder / "notes.png").write_text("not an image"))
    case("truncated PNG", ["truncated.png"],
         lambda: (folder / "truncated.png").write_bytes(good.read_bytes()[:200]))
    case("empty file", ["empty.png"], lambda: (folder / "empty.png").write_bytes(b""))
    case("garbage JPEG", ["bad.jpg"],
         lambda: (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage"))
    case("1 x 1 image", ["one.png"],
         lambda: iio.imwrite(folder / "one.png", np.zeros((1, 1), np.uint8)))
    case("12 x 30 image, 17 px kernel", ["small.png", "--kernel-size", "17"],
         lambda: iio.imwrite(folder / "small.png", photo(rng, (12, 30, 3))))
    case("60 x 60 image, 33 px network", ["sixty.png", "--kernel-size", "33"],
         lambda: iio.imwrite(folder / "sixty.png", photo(rng, (60, 60, 3))))

    def float_tiff(name, value):
        image = np.full((60, 60), 0.5, np.float32)
        image[3, 4] = value
        iio.imwrite(folder / name, image, plugin="tifffile")
    case("NaN pixel (float TIFF)", ["nan.tif"], lambda: float_tiff("nan.tif", np.nan))
    case("Inf pixel (float TIFF)", ["inf.tif"], lambda: float_tiff("inf.tif", np.inf))
    case("corrupt model file", ["photo.png", "--model", "model.npz"],
         lambda: (folder / "model.npz").write_bytes(b"garbage"))
    case("wrong model file (an .npz without refdeblur metadata)",
         ["photo.png", "--model", "other.npz"],
         lambda: np.savez(folder / "other.npz", weights=np.zeros(3)))
    case("output exists, no --overwrite", ["photo.png"],
         lambda: (folder / "photo_deblurred.png").write_bytes(b"precious"))
    case("output is the input, even with --overwrite",
         ["photo.png", "-o", "photo.png", "--overwrite"])
    case("output folder is a file", ["photo.png", "--out-dir", "blocker/x"],
         lambda: (folder / "blocker").write_text("a file"))
    case("-o with several inputs", ["photo.png", "photo.png", "-o", "x.png"])
    case("flat grey image", ["flat.png"],
         lambda: iio.imwrite(folder / "flat.png", np.full((128, 128), 128, np.uint8)))
    case("saturated white image", ["white.png"],
         lambda: iio.imwrite(folder / "white.png", np.full((128, 128), 255, np.uint8)))

    def rgba16():
        from refdeblur.image_io import write_image
        image = np.concatenate([photo(rng, (120, 128, 3)).astype(np.uint16) * 257,
                                np.full((120, 128, 1), 40000, np.uint16)], axis=-1)
        write_image(folder / "rgba16.png", image)
    case("16-bit RGBA (alpha channel)", ["rgba16.png"], rgba16)
    return made


def main():
    rng = np.random.default_rng(0)
    print("| case | command | exit | stderr | traceback | files added or changed |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        names = list(cases(Path(scratch), rng))
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            args, prepare = cases(folder, rng)[name]
            if prepare:
                prepare()
            before = snapshot(folder)
            result = subprocess.run([sys.executable, "-m", "refdeblur", "deblur", *args],
                                    cwd=folder, capture_output=True, text=True)
            after = snapshot(folder)
            changed = sorted(str(p) for p in after if before.get(p) != after[p])
            err = " / ".join(line.replace(scratch, "TMP") for line in
                             result.stderr.strip().splitlines())
            print(f"| {name} | `refdeblur deblur {' '.join(args)}` | {result.returncode} "
                  f"| {err.replace('|', '¦')} | {'yes' if 'Traceback' in result.stderr else 'no'} "
                  f"| {', '.join(changed) or 'none'} |", flush=True)


if __name__ == "__main__":
    main()
