"""Tests of the MATLAB-``imresize`` resampling layer (derivations/resample.md).

What the MATLAB agreement rests on (we cannot run MATLAB here):

* weight matrices computed by hand from Keys' kernel and the
  ``contributions`` algorithm of ``imresize.m`` (comments below show the
  arithmetic); they pin the mirror boundary rule, which clamping would fail;
* MATLAB outputs published in Stack Overflow answers (bilinear with and
  without antialiasing, bicubic without), exact dyadic numbers;
* independent implementations: scikit-image's linear ``resize`` (the same
  pixel-centre mapping and half-sample symmetric boundary, so it must agree
  everywhere) and Pillow's ``BICUBIC`` (Keys ``a = -0.5`` with the same
  support widening when shrinking, but truncated at the border, so it must
  agree in the interior only).
"""

import numpy as np
import pytest

from refdeblur import gradcheck
from refdeblur.layers.resample import Resample, imresize, resize_matrix


def _centres(in_size, out_size, scale=None):
    """MATLAB's input coordinates of the output pixels (S1), 1-based."""
    scale = out_size / in_size if scale is None else scale
    x = np.arange(1, out_size + 1)
    return x / scale + 0.5 * (1 - 1 / scale)


def _interior(in_size, out_size, half_width):
    """Outputs whose kernel support lies inside ``[0.5, n + 0.5]``.

    ``half_width`` is in input pixels (2 for cubic, 2/scale for the widened
    antialiasing cubic). No tap of these outputs is mirrored.
    """
    u = _centres(in_size, out_size)
    return (u - half_width >= 0.5) & (u + half_width <= in_size + 0.5)


# --------------------------------------------------------------------------
# Weights pinned by hand
# --------------------------------------------------------------------------

def test_resize_matrix_shrink_4_to_2_by_hand():
    # imresize(., [. 2]) on a length-4 axis: scale 1/2, antialiased cubic
    # h(t) = 0.5 * cubic(t / 2) of width 8. Output 1 sits at
    # u = 1/0.5 + 0.5 * (1 - 2) = 1.5; left = floor(1.5 - 4) = -3, 10 taps
    # -3..6 at distances 4.5, 3.5, ..., -4.5, i.e. cubic at |t|/2 =
    # 2.25, 1.75, 1.25, 0.75, 0.25 -> 0, -3/128, -9/128, 29/128, 111/128.
    # Times 1/2 (their sum is already 1):
    #   tap  -2     -1     0      1       2       3      4      5
    #   w   -3/256 -9/256 29/256 111/256 111/256 29/256 -9/256 -3/256
    # Mirroring aux = [1 2 3 4 4 3 2 1] sends -2 -> 3, -1 -> 2, 0 -> 1,
    # 4 -> 4, 5 -> 4. Column sums (x 256): 29 + 111 = 140, -9 + 111 = 102,
    # -3 + 29 = 26, -9 - 3 = -12; in 128ths: 70, 51, 13, -6.
    # (Clamping the taps to 1..4 instead, as an older copy of imresize.m
    # does, would give 64, 55.5, 14.5, -6.)
    expected = np.array([[70, 51, 13, -6], [-6, 13, 51, 70]]) / 128
    np.testing.assert_allclose(resize_matrix(4, 2), expected, rtol=0, atol=1e-15)


def test_resize_matrix_enlarge_2_to_4_by_hand():
    # Scale 2, plain cubic. Output 1 at u = 0.5 + 0.5 * (1 - 0.5) = 0.75;
    # taps -2..3 at distances 2.75, 1.75, 0.75, -0.25, -1.25, -2.25 ->
    # 0, -3/128, 29/128, 111/128, -9/128, 0. Mirroring [1 2 2 1]:
    # -1 -> 2, 0 -> 1, 1 -> 1, 2 -> 2: col 1 = 140/128, col 2 = -12/128.
    # Output 2 at u = 1.25: taps -1..4 at 2.25, 1.25, 0.25, -0.75, -1.75,
    # -2.75 -> 0, -9, 111, 29, -3, 0 (/128); 0 -> 1, 3 -> 2:
    # col 1 = 102/128, col 2 = 26/128. Outputs 3, 4 mirror outputs 2, 1.
    expected = np.array([[70, -6], [51, 13], [13, 51], [-6, 70]]) / 64
    np.testing.assert_allclose(resize_matrix(2, 4), expected, rtol=0, atol=1e-15)


def test_bicubic_antialiased_vector_by_hand():
    # imresize([1 2 3 4], [1 2]) = [70 51 13 -6] . [1 2 3 4] / 128 and its
    # mirror image: 187/128 = 1.4609375, 453/128 = 3.5390625. (1.375 and
    # 3.625 are MATLAB's bilinear, non-antialiased values of a different
    # input; see the published test below.)
    out = imresize(np.array([[1.0, 2.0, 3.0, 4.0]]), output_shape=(1, 2))
    np.testing.assert_allclose(out, [[187 / 128, 453 / 128]], rtol=0, atol=1e-15)


def test_linear_weights_by_hand():
    # Triangle kernel, 3 -> 2 without antialiasing: scale 2/3,
    # u = 1.5 * x - 0.25 = 1.25, 2.75: weights (0.75, 0.25) on pixels 1, 2
    # and (0.25, 0.75) on pixels 2, 3.
    expected = np.array([[0.75, 0.25, 0.0], [0.0, 0.25, 0.75]])
    np.testing.assert_allclose(
        resize_matrix(3, 2, kernel="linear", antialias=False), expected,
        rtol=0, atol=1e-15)


# --------------------------------------------------------------------------
# Published MATLAB outputs
# --------------------------------------------------------------------------

# MATLAB session output quoted in the Stack Overflow answer to "Why does
# OpenCV cv2.resize give different answer than MATLAB imresize?" (mirrored at
# https://qa.1r1g.com/sf/ask/1539796611 and http://xiaobeizi.cn/x/HJZgjggWQ8).
_SMALL = np.array([[1.0, 2.0], [3.0, 4.0]])
_SMALL_UP = np.array([[1.0, 1.25, 1.75, 2.0],
                      [1.5, 1.75, 2.25, 2.5],
                      [2.5, 2.75, 3.25, 3.5],
                      [3.0, 3.25, 3.75, 4.0]])


def test_matlab_published_bilinear_enlarge():
    # x = imresize([1,2;3,4],[4,4],'bilinear')
    out = imresize(_SMALL, output_shape=(4, 4), kernel="bilinear")
    np.testing.assert_allclose(out, _SMALL_UP, rtol=0, atol=1e-14)


def test_matlab_published_bilinear_shrink():
    # imresize(x,[2,2],'bilinear') and ... 'AntiAliasing',false
    out = imresize(_SMALL_UP, output_shape=(2, 2), kernel="bilinear")
    np.testing.assert_allclose(out, [[1.5625, 2.1875], [2.8125, 3.4375]],
                               rtol=0, atol=1e-14)
    out = imresize(_SMALL_UP, output_shape=(2, 2), kernel="bilinear",
                   antialias=False)
    np.testing.assert_allclose(out, [[1.375, 2.125], [2.875, 3.625]],
                               rtol=0, atol=1e-14)


def test_matlab_published_scale_half():
    # Stack Overflow answer to "MATLAB vs C++ vs OpenCV - imresize" (mirrored
    # at https://w3toppers.com/matlab-vs-c-vs-opencv-imresize/):
    # M = reshape(0:15,4,4).'; imresize(M,0.5,method,'AntiAliasing',aa)
    m = np.arange(16.0).reshape(4, 4)
    cases = [("bilinear", True, [[3.125, 4.875], [10.125, 11.875]]),
             ("bilinear", False, [[2.5, 4.5], [10.5, 12.5]]),
             ("bicubic", False, [[2.1875, 4.3125], [10.6875, 12.8125]])]
    for kernel, antialias, expected in cases:
        out = imresize(m, scale=0.5, kernel=kernel, antialias=antialias)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-13,
                                   err_msg=f"{kernel}, antialias={antialias}")


# --------------------------------------------------------------------------
# Properties of the weights
# --------------------------------------------------------------------------

SIZE_PAIRS = [(25, 17), (17, 25), (19, 13), (13, 19), (7, 7), (5, 2), (1, 3),
              (3, 1), (256, 175)]


@pytest.mark.parametrize("kernel", ["cubic", "linear"])
@pytest.mark.parametrize("antialias", [True, False])
def test_rows_sum_to_one_and_constants_survive(kernel, antialias):
    for n_in, n_out in SIZE_PAIRS:
        matrix = resize_matrix(n_in, n_out, kernel=kernel, antialias=antialias)
        assert matrix.shape == (n_out, n_in)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    image = np.full((25, 19), 0.3)
    out = imresize(image, output_shape=(17, 31), kernel=kernel,
                   antialias=antialias)
    np.testing.assert_allclose(out, 0.3, rtol=0, atol=1e-15)


def test_same_size_is_identity():
    for kernel in ("cubic", "linear"):
        np.testing.assert_array_equal(resize_matrix(9, 9, kernel=kernel),
                                      np.eye(9))


@pytest.mark.parametrize("kernel, degrees",
                         [("cubic", (0, 1, 2)), ("linear", (0, 1))])
def test_enlarging_reproduces_polynomials_in_the_interior(kernel, degrees):
    # Keys' a = -1/2 is the one cubic kernel that reproduces quadratics
    # (third-order accuracy); the triangle reproduces lines. A kernel with
    # another a (OpenCV's -0.75) fails the quadratic case.
    half_width = 2.0 if kernel == "cubic" else 1.0
    for n_in, n_out in [(13, 25), (17, 25), (19, 41)]:
        matrix = resize_matrix(n_in, n_out, kernel=kernel)
        u = _centres(n_in, n_out)
        inside = _interior(n_in, n_out, half_width)
        assert inside.sum() >= n_out // 2
        j = np.arange(1.0, n_in + 1)
        for p in degrees:
            np.testing.assert_allclose((matrix @ j**p)[inside], u[inside]**p,
                                       rtol=1e-13, atol=1e-13)


def test_scale_argument_versus_output_shape():
    # imresize(A, 0.68) on 256 rows: ceil(174.08) = 175 rows, weights built
    # with scale 0.68; imresize(A, [175 .]) uses 175/256 instead.
    rng = np.random.default_rng(0)
    image = rng.standard_normal((256, 25))
    by_scale = imresize(image, scale=0.68)
    assert by_scale.shape == (175, 17)
    by_shape = imresize(image, output_shape=(175, 17))
    assert np.abs(by_scale - by_shape).max() > 1e-3  # rows differ
    np.testing.assert_allclose(
        by_scale, resize_matrix(256, 175, scale=0.68) @ image
        @ resize_matrix(25, 17).T, rtol=0, atol=1e-12)
    layer = Resample((256, 25), (175, 17), scale=0.68)
    np.testing.assert_allclose(layer.forward(image)[0], by_scale,
                               rtol=0, atol=1e-12)


# --------------------------------------------------------------------------
# Independent implementations
# --------------------------------------------------------------------------

def test_agrees_with_skimage_linear_everywhere():
    # skimage.transform.resize(order=1, mode="symmetric") maps pixel centres
    # as MATLAB and extends half-sample symmetrically, so without
    # antialiasing the bilinear results agree to rounding, borders included.
    from skimage.transform import resize
    rng = np.random.default_rng(1)
    image = rng.random((19, 25))
    for shape in [(30, 41), (13, 17), (19, 11)]:
        ours = imresize(image, output_shape=shape, kernel="linear",
                        antialias=False)
        theirs = resize(image, shape, order=1, mode="symmetric",
                        anti_aliasing=False)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-13)


def test_agrees_with_pillow_bicubic_in_the_interior():
    # Pillow's BICUBIC is Keys with a = -0.5 and, when shrinking, the same
    # support widening by 1/scale with normalised weights; it truncates the
    # kernel at the border instead of mirroring, so only the interior must
    # agree (to its float32 precision).
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(2)
    image = rng.random((19, 25))
    pil = image_module.fromarray(image.astype(np.float32))
    for shape in [(30, 41), (13, 17)]:
        theirs = np.asarray(
            pil.resize(shape[::-1], image_module.Resampling.BICUBIC),
            dtype=np.float64)
        ours = imresize(image, output_shape=shape)
        half = [2.0 / min(1.0, o / i) for o, i in zip(shape, image.shape)]
        rows = _interior(image.shape[0], shape[0], half[0])
        cols = _interior(image.shape[1], shape[1], half[1])
        assert rows.sum() > 4 and cols.sum() > 4
        np.testing.assert_allclose(ours[np.ix_(rows, cols)],
                                   theirs[np.ix_(rows, cols)],
                                   rtol=0, atol=5e-7)
        # ... and they do differ at the border, where MATLAB mirrors.
        assert np.abs(ours - theirs).max() > 1e-3


# --------------------------------------------------------------------------
# The layer: adjoint, gradient, shapes, dtype
# --------------------------------------------------------------------------

LAYER_CASES = [((25, 19), (17, 13)), ((17, 13), (25, 19)),
               ((25, 19), (31, 12))]


@pytest.mark.parametrize("in_shape, out_shape", LAYER_CASES)
def test_adjoint(in_shape, out_shape, rng):
    layer = Resample(in_shape, out_shape)
    lead = (2, 3)
    error = gradcheck.adjoint_mismatch(
        lambda u: layer.forward(u)[0],
        lambda v: layer.backward(v, layer.forward(np.zeros(lead + in_shape))[1])[0],
        lead + in_shape, lead + out_shape, rng=rng)
    assert error <= 1e-12


def test_backward_is_the_transpose_of_the_full_operator():
    # Build the full (Ho*Wo) x (Hi*Wi) matrix column by column from the
    # forward pass and its transpose row by row from the backward pass.
    in_shape, out_shape = (7, 5), (4, 6)
    layer = Resample(in_shape, out_shape)
    basis_in = np.eye(35).reshape(35, *in_shape)
    basis_out = np.eye(24).reshape(24, *out_shape)
    forward, cache = layer.forward(basis_in)
    full = forward.reshape(35, 24).T
    backward = layer.backward(basis_out, cache._replace(
        input_shape=(24,) + in_shape))[0].reshape(24, 35)
    np.testing.assert_allclose(backward, full, rtol=0, atol=1e-15)
    np.testing.assert_allclose(full, np.kron(layer.row_matrix, layer.col_matrix),
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("in_shape, out_shape", LAYER_CASES[:2])
def test_vjp(in_shape, out_shape, rng):
    layer = Resample(in_shape, out_shape)
    x = rng.standard_normal((2, 2) + in_shape)
    _, cache = layer.forward(x)
    errors = gradcheck.check_vjp(
        lambda a: layer.forward(a)[0], [x],
        lambda c: [layer.backward(c, cache)[0]], rng=rng)
    assert max(errors) <= 1e-6


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_layouts_match_the_2d_resize(lead, rng):
    layer = Resample((25, 19), (17, 13))
    x = rng.standard_normal(lead + (25, 19))
    out, cache = layer.forward(x)
    assert out.shape == lead + (17, 13)
    expected = np.stack([imresize(s, output_shape=(17, 13))
                         for s in x.reshape(-1, 25, 19)]).reshape(out.shape)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-13)
    dx, grads = layer.backward(np.ones_like(out), cache)
    assert dx.shape == x.shape and grads == {}
    assert layer.init_params(rng) == {}


@pytest.mark.parametrize("in_shape, out_shape", LAYER_CASES[:2])
def test_float32_in_float32_out(in_shape, out_shape, rng):
    layer = Resample(in_shape, out_shape)
    x = rng.standard_normal((2, 1) + in_shape)
    out64, cache64 = layer.forward(x)
    out32, cache32 = layer.forward(x.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=0, atol=1e-5)
    dout = rng.standard_normal(out64.shape)
    dx32 = layer.backward(dout.astype(np.float32), cache32)[0]
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, layer.backward(dout, cache64)[0],
                               rtol=0, atol=1e-5)
    assert imresize(x.astype(np.float32), scale=0.5).dtype == np.float32


def test_errors():
    layer = Resample((25, 19), (17, 13))
    with pytest.raises(ValueError, match="shape"):
        layer.forward(np.zeros((1, 19, 25)))
    with pytest.raises(ValueError, match="shape"):
        layer.forward(np.zeros(25))
    _, cache = layer.forward(np.zeros((2, 25, 19)))
    with pytest.raises(ValueError, match="shape"):
        layer.backward(np.zeros((2, 13, 17)), cache)
    with pytest.raises(TypeError):
        layer.forward(np.zeros((25, 19), dtype=np.int64))
    with pytest.raises(ValueError, match="kernel"):
        resize_matrix(4, 2, kernel="lanczos3")
    with pytest.raises(ValueError):
        resize_matrix(0, 2)
    with pytest.raises(ValueError):
        Resample((256, 25), (174, 17), scale=0.68)  # ceil gives 175 rows
    with pytest.raises(ValueError, match="exactly one"):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(np.zeros((4, 4)), scale=0.5, output_shape=(2, 2))
    with pytest.raises(ValueError):
        layer.row_matrix[0, 0] = 1.0  # configuration is read-only
