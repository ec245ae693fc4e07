"""Synthetic document pages (refdeblur.training.documents): deterministic,
in [0, 1], with enough structure for the training data's flat rule, varied."""

import numpy as np
import pytest

from refdeblur.training.data import is_flat
from refdeblur.training.documents import (SYLLABLES, document_images, pseudo_words,
                                          render_document)


@pytest.fixture(scope="module")
def pages():
    """Three full-size pages, from seeds 0, 1 and 2."""
    return [render_document((512, 512), np.random.default_rng(seed)) for seed in range(3)]


def test_a_page_is_a_function_of_the_generator_state(pages):
    again = render_document((512, 512), np.random.default_rng(1))
    np.testing.assert_array_equal(again, pages[1])
    # a list of pages is the pages drawn one after the other from one generator
    rng = np.random.default_rng(5)
    listed = document_images(2, (96, 80), np.random.default_rng(5))
    for page in listed:
        np.testing.assert_array_equal(page, render_document((96, 80), rng))


def test_pages_are_grey_images_in_the_unit_range(pages):
    for page in pages:
        assert page.shape == (512, 512) and page.dtype == np.float64
        assert page.min() >= 0.0 and page.max() <= 1.0
    wide = render_document((64, 200), np.random.default_rng(3))
    assert wide.shape == (64, 200)


def test_pages_pass_the_flat_rule_of_the_training_data(pages):
    for page in pages:
        assert not is_flat(page)


def test_different_seeds_give_different_pages(pages):
    assert not np.array_equal(pages[0], pages[1])
    assert not np.array_equal(pages[1], pages[2])
    # they differ in layout, not only in noise: the ink is in other places
    dark = [page < np.median(page) - 0.2 for page in pages]
    assert np.mean(dark[0] != dark[1]) > 0.02


def test_paper_is_light_with_dark_ink_and_a_blackboard_the_reverse():
    paper = render_document((256, 256), np.random.default_rng(4), blackboard=False)
    board = render_document((256, 256), np.random.default_rng(4), blackboard=True)
    assert np.median(paper) > 0.6 and np.median(board) < 0.35
    # the text is the minority of the pixels, darker on paper, lighter on the board
    assert np.percentile(paper, 1) < np.median(paper) - 0.2
    assert np.percentile(board, 99) > np.median(board) + 0.2


def test_pseudo_words_come_from_the_syllables():
    words = pseudo_words(200, np.random.default_rng(0), capitalise_first=False)
    assert len(words) == 200 and len(set(words)) > 100
    for word in words:
        stem = word.rstrip(",.;:")
        # every word is a concatenation of syllables
        reachable = {0}
        for end in range(1, len(stem) + 1):
            if any(start in reachable and stem[start:end] in SYLLABLES
                   for start in range(end)):
                reachable.add(end)
        assert len(stem) in reachable, word


def test_bad_shapes_and_generators_are_refused():
    with pytest.raises(ValueError, match="at least 32"):
        render_document((16, 64), np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        render_document((64, 64), 0)
