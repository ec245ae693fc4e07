"""Helpers shared by the figure scripts of this folder.

Each script puts this folder on ``sys.path`` and imports from here, so it
runs from any working directory, installed or from a source checkout.
"""

import sys
from pathlib import Path

import numpy as np

try:
    import refdeblur
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import refdeblur
from refdeblur.models import load_shipped_model  # noqa: E402


def output_path(out, name):
    """``out`` if it names a .png file, else ``out / name`` (default: ./name)."""
    if out is None:
        return Path(name)
    out = Path(out)
    if out.suffix.lower() == ".png":
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def save_figure(fig, out, name, *, quick=False):
    """Write ``fig`` to :func:`output_path` ``(out, name)``, close it, say where."""
    import matplotlib.pyplot as plt
    path = output_path(out, name)
    fig.savefig(path, dpi=80 if quick else 150)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def load_network(path):
    """The model in ``path``, or the shipped 17 px network."""
    return refdeblur.load_model(path) if path else load_shipped_model(17)


def layer_params(net, stage, layer_name):
    """The parameters of one layer of ``stage``, keyed by short name."""
    start = f"{stage.prefix}{layer_name}."
    return {name[len(start):]: value for name, value in net.params.items()
            if name.startswith(start)}


def gray_image(name):
    """A photo of ``skimage.data`` as grey float64 in [0, 1]."""
    from skimage import data
    from skimage.color import rgb2gray

    image = getattr(data, name)()
    if image.ndim == 3:
        return rgb2gray(image[..., :3])
    return image.astype(np.float64) / 255.0


def figure_parser(doc, name, *, seed_help="random seed (default 0)",
                  quick_help="small and fast (for tests)", model=True, seed=True,
                  png_out=True, out_default=None):
    """The options every script of this folder shares, with one meaning.

    ``--out DIR`` is the folder the script writes into (default: the current
    directory; created if missing); with ``png_out`` it may instead be a file
    name ending in ``.png``. ``--quick`` makes a small, fast version (used by
    the tests and ``make_figures.py --quick``). ``--model FILE`` and
    ``--seed N`` are added where the script uses a network or randomness.
    ``out_default`` replaces the current directory as the default folder.
    """
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if model:
        parser.add_argument("--model", type=Path, default=None,
                            help="model file (default: the shipped 17 px network)")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help=seed_help)
    where = "output folder or .png file" if png_out else "output folder"
    default = (f"{out_default}" if out_default is not None
               else f"the current directory, ./{name}")
    parser.add_argument("--out", type=Path, default=out_default,
                        help=f"{where} (default: {default})")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    return parser


def output_folder(out):
    """The folder ``--out`` names, created if missing (default: the current directory)."""
    if out is None:
        return Path(".")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def first_stage_images(net, blurry):
    """Run the network and collect the images of its first stage.

    Returns
    -------
    images : dict of str to ndarray
        ``conv`` (C, h, w): convolution output before tanh; ``tanh1``: after
        the first tanh; ``recombine1``: first recombination, before tanh;
        ``tanh2``: hidden images; ``sharp``, ``blurry``: the feature images
        x̃_i and ỹ_i, (n, h, w) each.
    output : NetworkOutput
    """
    output, cache = net.forward_with_cache(blurry)
    stage = net.scales[0][0]
    sc = cache.scales[0].stages[0]
    conv, _ = stage.conv.forward(sc.conv.x, layer_params(net, stage, "conv"))
    rec1, _ = stage.recombine1.forward(sc.recombine1.x,
                                       layer_params(net, stage, "recombine1"))
    features, _ = stage.recombine2.forward(
        sc.recombine2.x, layer_params(net, stage, "recombine2"))
    n = stage.n_pairs
    images = dict(conv=conv[0], tanh1=sc.tanh1.output[0], recombine1=rec1[0],
                  tanh2=sc.tanh2.output[0], sharp=features[0, :n],
                  blurry=features[0, n:])
    return images, output
