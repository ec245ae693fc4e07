"""Synthetic document pages: rendered text on paper-like backgrounds.

Training data for networks that deblur photos of documents, whiteboards and
blackboards, with no data set to download (derivations/fine_tuning.md,
"Synthetic documents"). A page is laid out from random choices (font
family, size, weight, line spacing, margins, one or two columns, blocks of
headings, paragraphs, lists and tables), its text is rendered with
matplotlib's Agg canvas and bundled DejaVu fonts, and the ink is laid on a
paper-like background (brightness, a smooth illumination gradient, a faint
texture) or, for a blackboard, light chalk on a dark board. The words are
pseudo-words made of syllables from :data:`SYLLABLES`, so no text corpus is
needed. Every choice comes from the ``rng`` given, in a fixed order: a page
is a deterministic function of the generator's state.
"""

import numpy as np
from scipy import ndimage

from ..camera_shake import check_rng

__all__ = ["FONT_FAMILIES", "SYLLABLES", "pseudo_words", "render_document",
           "document_images"]

#: The font families of the text (matplotlib's bundled DejaVu fonts).
FONT_FAMILIES = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")

#: Syllables of the pseudo-words: common letter groups of European languages,
#: so that the words have the letter shapes and lengths of real text.
SYLLABLES = ("a", "an", "ar", "at", "ba", "be", "bi", "bo", "ca", "ce", "che", "co",
             "da", "de", "di", "do", "el", "en", "er", "es", "fa", "fe", "fi", "fo",
             "ga", "ge", "gi", "ha", "he", "hi", "in", "is", "it", "ka", "la", "le",
             "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "ni", "no", "on", "or",
             "pa", "pe", "pi", "po", "qu", "ra", "re", "ri", "ro", "sa", "se", "si",
             "so", "sta", "str", "ta", "te", "th", "ti", "to", "tion", "ul", "um",
             "un", "va", "ve", "vi", "wa", "we", "xy", "za", "ze")

#: Rendering resolution; sizes are laid out in pixels and converted to points.
_DPI = 100

#: Mean advance of a character, as a fraction of the font size, per family
#: (measured on DejaVu lower-case text); used to wrap the lines.
_CHAR_WIDTH = {"DejaVu Sans": 0.56, "DejaVu Serif": 0.56, "DejaVu Sans Mono": 0.61}

_PUNCTUATION = (",", ",", ".", ".", ";", ":")


def pseudo_words(n, rng, *, capitalise_first=True):
    """``n`` pseudo-words of one to four syllables, with some punctuation.

    Parameters
    ----------
    n : int
        Number of words.
    rng : numpy.random.Generator
    capitalise_first : bool, optional
        Start the first word with a capital letter (default True).

    Returns
    -------
    list of str

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.training.documents import pseudo_words
    >>> len(pseudo_words(5, np.random.default_rng(0)))
    5
    """
    check_rng(rng)
    lengths = rng.integers(1, 5, size=n)
    picks = rng.integers(len(SYLLABLES), size=int(lengths.sum()))
    marks = rng.random(n)
    words, start = [], 0
    for i, length in enumerate(lengths):
        word = "".join(SYLLABLES[j] for j in picks[start:start + length])
        start += length
        if marks[i] < 0.08:
            word += _PUNCTUATION[int(marks[i] * 75) % len(_PUNCTUATION)]
        words.append(word)
    if capitalise_first and words:
        words[0] = words[0].capitalize()
    return words


class _Layout:
    """Places lines of text in the columns of a page, top to bottom."""

    def __init__(self, shape, margin, n_columns, gap):
        height, width = shape
        self.height = height
        self.top = margin
        self.bottom = height - margin
        column_width = (width - 2 * margin - (n_columns - 1) * gap) / n_columns
        self.columns = [(margin + c * (column_width + gap), column_width)
                        for c in range(n_columns)]
        self.column = 0
        self.y = float(margin)

    @property
    def left(self):
        return self.columns[self.column][0]

    @property
    def width(self):
        return self.columns[self.column][1]

    def next_line(self, line_height):
        """The top of a new line of ``line_height`` px, or None when the page is full."""
        if self.y + line_height > self.bottom:
            if self.column + 1 >= len(self.columns):
                return None
            self.column += 1
            self.y = float(self.top)
        top = self.y
        self.y += line_height
        return top

    def skip(self, pixels):
        self.y += pixels


def _style(rng):
    """Font family, size in px, weight and slant of a body of text."""
    family = FONT_FAMILIES[rng.integers(len(FONT_FAMILIES))]
    size = float(np.exp(rng.uniform(np.log(9.0), np.log(20.0))))
    weight = "bold" if rng.random() < 0.15 else "normal"
    style = "italic" if (rng.random() < 0.1 and family != "DejaVu Sans Mono") else "normal"
    return {"family": family, "size": size, "weight": weight, "style": style}


def _put(figure, shape, x, y, text, style, *, size=None):
    height, width = shape
    size = style["size"] if size is None else size
    figure.text(x / width, 1.0 - y / height, text, family=style["family"],
                fontsize=size * 72.0 / _DPI, weight=style["weight"],
                style=style["style"], va="top", ha="left")


def _wrap(words, width, style, indent=0.0):
    """Greedy line breaking with the family's mean character width."""
    char = _CHAR_WIDTH[style["family"]] * style["size"]
    lines, current = [], ""
    for word in words:
        candidate = word if not current else f"{current} {word}"
        limit = width - (indent if not lines else 0.0)
        if current and len(candidate) * char > limit:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def _paragraph(figure, shape, layout, rng, style, spacing):
    line_height = style["size"] * spacing
    char = _CHAR_WIDTH[style["family"]] * style["size"]
    n_words = int(rng.integers(15, 90))
    indent = 2.0 * char if rng.random() < 0.5 else 0.0
    for i, line in enumerate(_wrap(pseudo_words(n_words, rng), layout.width, style,
                                   indent)):
        top = layout.next_line(line_height)
        if top is None:
            return False
        _put(figure, shape, layout.left + (indent if i == 0 else 0.0), top, line, style)
    layout.skip(line_height * rng.uniform(0.3, 1.0))
    return True


def _heading(figure, shape, layout, rng, style, spacing):
    heading = dict(_style(rng), weight="bold" if rng.random() < 0.7 else "normal")
    heading["size"] = style["size"] * rng.uniform(1.3, 2.2)
    text = " ".join(pseudo_words(int(rng.integers(1, 5)), rng))
    if rng.random() < 0.4:
        text = f"{rng.integers(1, 10)}. {text}"
    lines = _wrap(text.split(), layout.width, heading)
    layout.skip(heading["size"] * 0.3)
    for line in lines:
        top = layout.next_line(heading["size"] * 1.25)
        if top is None:
            return False
        _put(figure, shape, layout.left, top, line, heading)
    layout.skip(heading["size"] * 0.3)
    return True


def _list(figure, shape, layout, rng, style, spacing):
    line_height = style["size"] * spacing
    char = _CHAR_WIDTH[style["family"]] * style["size"]
    numbered = rng.random() < 0.5
    mark = "\u2022" if rng.random() < 0.6 else "\u2013"
    for item in range(int(rng.integers(2, 7))):
        label = f"{item + 1}." if numbered else mark
        lines = _wrap(pseudo_words(int(rng.integers(2, 20)), rng),
                      layout.width - 3 * char, style)
        for i, line in enumerate(lines):
            top = layout.next_line(line_height)
            if top is None:
                return False
            if i == 0:
                _put(figure, shape, layout.left + 0.5 * char, top, label, style)
            _put(figure, shape, layout.left + 3 * char, top, line, style)
    layout.skip(line_height * 0.5)
    return True


def _table(figure, shape, layout, rng, style, spacing, rules):
    """A grid of short words and numbers, with rules added to ``rules``."""
    size = style["size"]
    char = _CHAR_WIDTH[style["family"]] * size
    n_columns = int(rng.integers(2, 6))
    cell = layout.width / n_columns
    n_rows = int(rng.integers(2, 8))
    row_height = size * max(spacing, 1.4)
    max_chars = max(1, int(cell / char) - 1)
    grid = rng.random() < 0.5
    layout.skip(size * 0.5)
    first = layout.y
    for row in range(n_rows):
        top = layout.next_line(row_height)
        if top is None or (row and top < first):      # no table across columns
            return False
        if row == 0:
            first = top
        cell_style = dict(style, weight="bold") if row == 0 else style
        for column in range(n_columns):
            if row > 0 and column > 0 and rng.random() < 0.6:
                text = f"{rng.uniform(0, 10 ** rng.integers(1, 5)):.{rng.integers(0, 3)}f}"
            else:
                text = pseudo_words(1, rng, capitalise_first=row == 0)[0]
            _put(figure, shape, layout.left + column * cell + 0.3 * char,
                 top + 0.15 * size, text[:max_chars], cell_style)
        if grid or row == 0:
            rules.append(("h", top + row_height, layout.left, layout.left + layout.width))
    if grid:
        bottom = layout.y
        rules.append(("h", first, layout.left, layout.left + layout.width))
        for column in range(n_columns + 1):
            rules.append(("v", layout.left + column * cell, first, bottom))
    layout.skip(size * 0.8)
    return True


def _draw_rules(ink, rules, thickness):
    height, width = ink.shape
    for direction, at, start, stop in rules:
        at, start, stop = int(round(at)), int(round(start)), int(round(stop))
        if direction == "h":
            ink[max(at, 0):max(min(at + thickness, height), 0),
                max(start, 0):min(stop, width)] = 1.0
        else:
            ink[max(start, 0):min(stop, height),
                max(at, 0):max(min(at + thickness, width), 0)] = 1.0


def _ink(shape, rng):
    """Coverage in [0, 1] of the text and rules of a random layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = shape
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(figure)
    style = _style(rng)
    spacing = rng.uniform(1.15, 1.8)
    margin = float(rng.uniform(0.02, 0.1) * min(shape))
    n_columns = 2 if (rng.random() < 0.3
                      and width - 2 * margin > 50 * style["size"]) else 1
    layout = _Layout(shape, margin, n_columns, gap=2.0 * style["size"])
    blocks = (_paragraph, _heading, _list, _table)
    weights = np.array([0.5, 0.15, 0.2, 0.15])
    rules = []
    block = _heading if rng.random() < 0.6 else _paragraph
    while True:
        if block is _table:
            going = _table(figure, shape, layout, rng, style, spacing, rules)
        else:
            going = block(figure, shape, layout, rng, style, spacing)
        if not going:
            break
        block = blocks[rng.choice(len(blocks), p=weights)]
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    ink = np.zeros(shape)
    # The canvas can be a pixel off the requested size (rounding of inches).
    rows, cols = min(height, rgba.shape[0]), min(width, rgba.shape[1])
    ink[:rows, :cols] = 1.0 - rgba[:rows, :cols, 0] / 255.0
    _draw_rules(ink, rules, thickness=max(1, int(round(style["size"] / 14))))
    return ink


def _smooth_field(shape, rng, sigma):
    """White noise low-passed by a Gaussian of ``sigma`` px, scaled to unit deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-12)


def _background(shape, rng, blackboard):
    """Illumination (multiplicative) and texture (additive) of a page."""
    height, width = shape
    rows = (np.arange(height)[:, None] - height / 2) / max(shape)
    cols = (np.arange(width)[None, :] - width / 2) / max(shape)
    angle = rng.uniform(0, 2 * np.pi)
    slope = rng.uniform(0.0, 0.35)
    vignette = rng.uniform(0.0, 0.4)
    centre = rng.uniform(-0.3, 0.3, size=2)
    illumination = (1.0 + slope * (np.cos(angle) * cols + np.sin(angle) * rows)
                    - vignette * ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2))
    grain = rng.uniform(0.002, 0.012) * rng.standard_normal(shape)
    fibres = rng.uniform(0.0, 0.02 if not blackboard else 0.04) * _smooth_field(
        shape, rng, rng.uniform(1.0, 4.0))
    return illumination, grain + fibres


def render_document(shape, rng, *, blackboard=None):
    """One synthetic document page, grey values in [0, 1].

    Parameters
    ----------
    shape : tuple of int
        ``(height, width)`` in px, each at least 32.
    rng : numpy.random.Generator
        Source of every choice (layout, fonts, words, background).
    blackboard : bool, optional
        Light chalk on a dark board instead of dark ink on paper; default
        None draws it, with probability 0.15.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` float64 in [0, 1]; identical for identical
        generator states.

    Notes
    -----
    Paper: brightness in [0.72, 0.97], ink in [0, 0.45] with at least 0.3
    between them. Board: brightness in [0.08, 0.3], chalk in [0.6, 0.95].
    derivations/fine_tuning.md, "Synthetic documents", gives the reasons.

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.training.documents import render_document
    >>> page = render_document((128, 96), np.random.default_rng(0))
    >>> page.shape, bool(page.min() >= 0 and page.max() <= 1)
    ((128, 96), True)
    """
    check_rng(rng)
    shape = tuple(int(side) for side in shape)
    if len(shape) != 2 or min(shape) < 32:
        raise ValueError(f"a page needs a (height, width) of at least 32 px, got {shape}")
    if blackboard is None:
        blackboard = bool(rng.random() < 0.15)
    if blackboard:
        paper = rng.uniform(0.08, 0.3)
        ink_level = rng.uniform(0.6, 0.95)
    else:
        paper = rng.uniform(0.72, 0.97)
        ink_level = rng.uniform(0.0, min(0.45, paper - 0.3))
    ink = _ink(shape, rng)
    if blackboard:
        # chalk strokes are uneven: their coverage varies along them
        ink *= np.clip(1.0 - 0.3 * np.abs(_smooth_field(shape, rng, 1.5)), 0.3, 1.0)
    illumination, texture = _background(shape, rng, blackboard)
    page = illumination * (paper * (1.0 - ink) + ink_level * ink) + texture
    return np.clip(page, 0.0, 1.0)


def document_images(n, shape, rng, **options):
    """``n`` pages of :func:`render_document`, drawn one after the other from ``rng``.

    Parameters
    ----------
    n : int
        Number of pages.
    shape : tuple of int
        ``(height, width)`` of every page.
    rng : numpy.random.Generator
    **options
        Keyword arguments of :func:`render_document`.

    Returns
    -------
    list of numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from refdeblur.training.documents import document_images
    >>> len(document_images(2, (64, 64), np.random.default_rng(1)))
    2
    """
    check_rng(rng)
    return [render_document(shape, rng, **options) for _ in range(int(n))]
