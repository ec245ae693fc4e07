"""Gradient checks of a stage, a 3-stage scale network and a 2-scale network."""

import dataclasses

import numpy as np
import pytest

from refdeblur import build_network, gradcheck
from refdeblur.network import Architecture, Network, Stage
from refdeblur.network_fast import predict

TOL = 1e-6

# Tiny but complete networks: every layer, several feature pairs, odd and
# non-square images. beta_k = 1e-2 instead of the paper's 1e-4: with 3x3
# filters on 19x17 px the features have little energy, and a larger beta_k
# keeps the quotient well conditioned so that float64 finite differences
# resolve every parameter's derivative.
SMALL = dict(n_filters=4, n_hidden=5, beta_k=1e-2, initial_beta_x=0.1)


def _kink_signature(net, image, n_stages=None, forced=None):
    """Signs of every stage's cropped quotient: where the threshold bends."""
    _, cache = net.forward_with_cache(image, n_stages=n_stages, forced=forced)
    return np.concatenate([(stage.kernel_quotient.cropped > 0).ravel()
                           for scale in cache.scales for stage in scale.stages])


def _check_every_parameter(net, image, true_kernel, rng, n_stages=None, forced=None,
                           stage_loss_weight=0.0):
    """Relative error of d loss / d parameter along a random direction, per array.

    The step is chosen per parameter by :func:`gradcheck.stable_directional_derivative`,
    skipping steps whose stencil would cross the kernel threshold's kink.
    """
    _, grads = net.loss_and_grad(image, true_kernel, n_stages=n_stages, forced=forced,
                                 stage_loss_weight=stage_loss_weight)
    errors = {}
    for name in sorted(net.params):
        value = net.params[name]
        direction = rng.standard_normal(value.shape)

        def evaluate(new_value, function, name=name):
            saved = net.params[name]
            net.params[name] = new_value
            try:
                return function()
            finally:
                net.params[name] = saved

        def loss(new_value):
            return evaluate(new_value, lambda: net.loss_and_grad(
                image, true_kernel, n_stages=n_stages, forced=forced,
                stage_loss_weight=stage_loss_weight)[0])

        reference = _kink_signature(net, image, n_stages, forced)

        def is_smooth(h, value=value, direction=direction):
            return all(np.array_equal(evaluate(value + t * h * direction,
                                               lambda: _kink_signature(net, image, n_stages,
                                                                       forced)),
                                      reference) for t in (-2.0, 2.0))

        numeric, _ = gradcheck.stable_directional_derivative(
            loss, value, direction, is_smooth=is_smooth)
        errors[name] = gradcheck.relative_error(
            gradcheck.inner(grads[name], direction), numeric)
    return errors


def _true_kernels(rng, n_batch, m):
    kernel = rng.random((n_batch, m, m))
    return kernel / kernel.sum(axis=(1, 2), keepdims=True)


def test_stage_vjp_wrt_inputs_and_every_parameter(rng):
    arch = Architecture(kernel_sizes=(5,), filter_sizes=(3,), **SMALL)
    stage = Stage("s.", 2, 5, 3, 3, 2, arch)
    params = stage.init_params(rng)
    stage_input = rng.random((2, 2, 17, 14))
    blurry = rng.random((2, 17, 14))
    names = sorted(params)

    def function(stage_input, blurry, *values):
        kernel, latent, _ = stage.forward(stage_input, blurry, dict(zip(names, values)))
        return np.concatenate([kernel.ravel(), latent.ravel()])

    _, _, cache = stage.forward(stage_input, blurry, params)

    def vjp(weight):
        split = 2 * 5 * 5
        dkernel = weight[:split].reshape(2, 5, 5)
        dlatent = weight[split:].reshape(2, 17, 14)
        dinput, dblurry, grads = stage.backward(dkernel, dlatent, cache)
        return [dinput, dblurry] + [grads[n] for n in names]

    errors = gradcheck.check_vjp(function, [stage_input, blurry] + [params[n] for n in names],
                                 vjp, rng=rng)
    report = dict(zip(["input", "blurry"] + names, errors))
    assert max(errors) <= TOL, f"stage rel errs {report}"


def test_scale_network_of_three_stages_gradients(rng):
    net = build_network(5, rng=rng, filter_sizes=(3,), n_pairs=(1, 2, 3), **SMALL)
    image = rng.random((2, 19, 16))
    errors = _check_every_parameter(net, image, _true_kernels(rng, 2, 5), rng)
    assert len(errors) == 3 * 5          # conv w, b, two recombinations, beta_x
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"


def test_two_scale_network_end_to_end_gradients(rng):
    net = build_network(5, rng=rng, kernel_sizes=(3, 5), n_stages=2,
                        filter_sizes=(3, 3), n_pairs=(1, 2), taper_widths=(1, 2), **SMALL)
    image = rng.random((2, 19, 17))
    errors = _check_every_parameter(net, image, _true_kernels(rng, 2, 5), rng)
    assert {name.split(".")[0] for name in errors} == {"scale1", "scale2"}
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"


def test_two_scale_network_gradient_wrt_input_image(rng):
    net = build_network(5, rng=rng, kernel_sizes=(3, 5), n_stages=2,
                        filter_sizes=(3, 3), n_pairs=(1, 2), taper_widths=(1, 2), **SMALL)
    image = rng.random((2, 19, 17))
    _, cache = net.forward_with_cache(image)

    def vjp(weight):
        return [net.backward(weight, cache, input_grad=True)[1]]

    errors = gradcheck.check_vjp(lambda y: net.forward(y).kernel, [image], vjp, rng=rng)
    assert max(errors) <= TOL, f"input gradient rel err {errors}"


def _forcing(rng, n_batch, m):
    """Stage 1 forced for example 0, stage 2 for example 1, example 2 free."""
    return {0: (_true_kernels(rng, n_batch, m), np.array([True, False, False])),
            1: (_true_kernels(rng, n_batch, m), np.array([False, True, False]))}


def test_teacher_forced_stage_vjp(rng):
    arch = Architecture(kernel_sizes=(5,), filter_sizes=(3,), **SMALL)
    stage = Stage("s.", 2, 5, 3, 2, 2, arch)
    params = stage.init_params(rng)
    stage_input = rng.random((3, 2, 16, 15))
    blurry = rng.random((3, 16, 15))
    forced = (_true_kernels(rng, 3, 5), np.array([True, False, True]))
    names = sorted(params)

    def function(stage_input, blurry, *values):
        kernel, latent, _ = stage.forward(stage_input, blurry, dict(zip(names, values)),
                                          forced=forced)
        return np.concatenate([kernel.ravel(), latent.ravel()])

    _, _, cache = stage.forward(stage_input, blurry, params, forced=forced)

    def vjp(weight):
        split = 3 * 5 * 5
        dinput, dblurry, grads = stage.backward(weight[:split].reshape(3, 5, 5),
                                                weight[split:].reshape(3, 16, 15), cache)
        return [dinput, dblurry] + [grads[n] for n in names]

    errors = gradcheck.check_vjp(function, [stage_input, blurry] + [params[n] for n in names],
                                 vjp, rng=rng)
    report = dict(zip(["input", "blurry"] + names, errors))
    assert max(errors) <= TOL, f"forced stage rel errs {report}"
    # (N14): the forced examples' features get no gradient through the kernel
    dinput, _, _ = stage.backward(np.ones((3, 5, 5)), None, cache)
    assert np.all(dinput[[0, 2]] == 0) and np.any(dinput[1] != 0)


# Slow: test_teacher_forcing_at_the_coarse_scale_gradients covers (N13)-(N14) in a
# network, with a stage of each scale forced.
@pytest.mark.slow
def test_teacher_forced_network_gradients(rng):
    net = build_network(5, rng=rng, filter_sizes=(3,), n_pairs=(1, 2, 2), **SMALL)
    image = rng.random((3, 18, 17))
    errors = _check_every_parameter(net, image, _true_kernels(rng, 3, 5), rng,
                                    forced=_forcing(rng, 3, 5))
    assert len(errors) == 3 * 5
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"


def test_teacher_forcing_at_the_coarse_scale_gradients(rng):
    net = build_network(5, rng=rng, kernel_sizes=(3, 5), n_stages=2, filter_sizes=(3, 3),
                        n_pairs=(1, 2), taper_widths=(1, 2), **SMALL)
    image = rng.random((3, 19, 17))
    forced = {(0, 1): (_true_kernels(rng, 3, 3), np.array([True, False, True])),
              (1, 0): (_true_kernels(rng, 3, 5), np.array([False, True, False]))}
    errors = _check_every_parameter(net, image, _true_kernels(rng, 3, 5), rng, forced=forced)
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"
    output, _ = net.forward_with_cache(image, forced=forced)
    np.testing.assert_array_equal(output.stage_kernels[0][1][[0, 2]], forced[(0, 1)][0][[0, 2]])
    with pytest.raises(ValueError, match="no stage"):
        net.forward_with_cache(image, forced={(2, 0): forced[(1, 0)]})


def test_teacher_forcing_replaces_only_the_masked_examples(rng):
    net = build_network(5, rng=rng, kernel_sizes=(3, 5), filter_sizes=(3, 3),
                        n_pairs=(1, 2, 2), taper_widths=(1, 2), **SMALL)
    image = rng.random((3, 19, 18))
    forced = _forcing(rng, 3, 5)
    free, _ = net.forward_with_cache(image)
    output, _ = net.forward_with_cache(image, forced=forced)
    # the coarse scale is never forced; the finest scale's stages are, per example
    for coarse, reference in zip(output.stage_kernels[0], free.stage_kernels[0]):
        np.testing.assert_array_equal(coarse, reference)
    finest = output.stage_kernels[1]
    np.testing.assert_array_equal(finest[0][0], forced[0][0][0])
    np.testing.assert_array_equal(finest[1][1], forced[1][0][1])
    np.testing.assert_allclose(output.kernel[2], free.kernel[2], rtol=0, atol=1e-13)
    assert not np.allclose(output.kernel[:2], free.kernel[:2])
    # a forcing that masks nothing changes nothing
    nothing = {0: (forced[0][0], np.zeros(3, dtype=bool))}
    np.testing.assert_array_equal(net.forward_with_cache(image, forced=nothing)[0].kernel,
                                  free.kernel)


def test_loss_on_every_stage_gradients(rng):
    net = build_network(5, rng=rng, filter_sizes=(3,), n_stages=2, n_pairs=(1, 2), **SMALL)
    image = rng.random((2, 17, 16))
    true_kernel = _true_kernels(rng, 2, 5)
    errors = _check_every_parameter(net, image, true_kernel, rng, stage_loss_weight=0.7)
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"
    net = build_network(5, rng=rng, kernel_sizes=(3, 5), filter_sizes=(3, 3),
                        n_pairs=(1, 2, 2), taper_widths=(1, 2), **SMALL)
    image = rng.random((2, 19, 18))
    # (N15): the loss adds the earlier stages of the finest scale, not the coarse scale's
    output = net.forward(image)
    expected = sum(np.sum((k - true_kernel) ** 2) * weight for k, weight in
                   zip(output.stage_kernels[-1], (0.7, 0.7, 1.0))) / 2
    loss, grads = net.loss_and_grad(image, true_kernel, stage_loss_weight=0.7)
    assert loss == pytest.approx(expected, rel=1e-12)
    _, plain = net.loss_and_grad(image, true_kernel)
    assert not np.allclose(grads["scale2.stage1.conv.weight"],
                           plain["scale2.stage1.conv.weight"])
    np.testing.assert_array_equal(net.loss_and_grad(image, true_kernel,
                                                    stage_loss_weight=0.0)[1]["scale2.stage1.conv.weight"],
                                  plain["scale2.stage1.conv.weight"])


def test_kernel_prior_scale_network_gradients(rng):
    net = build_network(5, rng=rng, filter_sizes=(3,), n_stages=2, n_pairs=(1, 2),
                        kernel_prior=True, **dict(SMALL, beta_k=0.3))
    image = rng.random((2, 17, 16))
    errors = _check_every_parameter(net, image, _true_kernels(rng, 2, 5), rng)
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"


# Slow: test_kernel_prior_scale_network_gradients covers the chain rule (N16)-(N17),
# tests/layers/test_kernel_quotient.py::test_prior_vjp the relative beta_k; this one
# checks the prior together with two scales, teacher forcing and a loss on every stage.
@pytest.mark.slow
@pytest.mark.parametrize("beta_mode", ["constant", "relative"])
def test_kernel_prior_network_gradients(rng, beta_mode):
    extra = dict(SMALL, beta_k_mode=beta_mode, beta_k=0.05 if beta_mode == "relative" else 0.3)
    net = build_network(5, rng=rng, kernel_sizes=(3, 5), filter_sizes=(3, 3),
                        n_pairs=(1, 2, 2), taper_widths=(1, 2), kernel_prior=True, **extra)
    image = rng.random((3, 19, 18))
    errors = _check_every_parameter(net, image, _true_kernels(rng, 3, 5), rng,
                                    forced=_forcing(rng, 3, 5), stage_loss_weight=0.3)
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"


def test_kernel_prior_changes_the_later_stages_only_and_inference_agrees(rng):
    plain = build_network(5, rng=np.random.default_rng(3), filter_sizes=(3,),
                          n_pairs=(1, 2, 2), **dict(SMALL, beta_k=0.3))
    prior = Network(dataclasses.replace(plain.architecture, kernel_prior=True), plain.params)
    image = rng.random((2, 20, 19))
    a, b = plain.forward(image), prior.forward(image)
    np.testing.assert_array_equal(a.stage_kernels[0][0], b.stage_kernels[0][0])
    assert not np.allclose(a.stage_kernels[0][1], b.stage_kernels[0][1])
    np.testing.assert_array_equal(predict(prior, image).kernel, b.kernel)
    with_cache, _ = prior.forward_with_cache(image)
    np.testing.assert_array_equal(with_cache.kernel, b.kernel)


def test_truncated_network_trains_only_the_stages_it_runs(rng):
    net = build_network(5, rng=rng, filter_sizes=(3,), n_pairs=(1, 2, 2), **SMALL)
    image = rng.random((2, 18, 18))
    true_kernel = _true_kernels(rng, 2, 5)
    loss, grads = net.loss_and_grad(image, true_kernel, n_stages=2)
    output = net.forward(image, n_stages=2)
    assert len(output.stage_kernels[0]) == 2
    assert loss == pytest.approx(np.sum((output.kernel - true_kernel) ** 2) / 2)
    assert all(np.all(grads[name] == 0) for name in grads if name.startswith("scale1.stage3."))
    assert any(np.any(grads[name] != 0) for name in grads if name.startswith("scale1.stage1."))
    # the latent image of the last stage run does not reach the loss
    assert np.all(grads["scale1.stage2.image_quotient.log_beta"] == 0)


def test_forward_output_properties(rng):
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4)
    image = rng.random((2, 31, 26))
    out = net.forward(image)
    assert out.kernel.shape == (2, 7, 7)
    assert np.all(out.kernel >= 0)
    np.testing.assert_allclose(out.kernel.sum(axis=(1, 2)), 1.0, rtol=1e-6)
    assert [len(s) for s in out.stage_kernels] == [3, 3]
    assert out.stage_kernels[0][0].shape == (2, 5, 5)
    assert out.latent.shape == (2, 31, 26)
    np.testing.assert_array_equal(out.kernel, out.stage_kernels[-1][-1])
    single = net.forward(image[1])
    assert single.kernel.shape == (7, 7) and single.latent.shape == (31, 26)
    np.testing.assert_allclose(single.kernel, out.kernel[1], rtol=1e-12, atol=1e-14)


def test_forward_can_stop_after_the_coarse_scales(rng):
    # The coarse-to-fine refinement needs only the coarsest scale's kernel;
    # stopping there must give exactly the full run's numbers for it.
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4, inference_stages=2)
    image = rng.random((33, 29))
    full = net.forward(image)
    coarse = net.forward(image, n_scales=1)
    assert len(coarse.stage_kernels) == 1 and len(coarse.stage_kernels[0]) == 3
    for a, b in zip(coarse.stage_kernels[0], full.stage_kernels[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(coarse.kernel, full.stage_kernels[0][-1])
    assert coarse.latent.shape == tuple(net.scale_shapes(image.shape)[0])
    assert len(full.stage_kernels[1]) == 2                # inference_stages
    np.testing.assert_array_equal(net.forward(image, n_scales=2).kernel, full.kernel)
    for bad in (0, 3):
        with pytest.raises(ValueError, match="n_scales"):
            net.forward(image, n_scales=bad)


def test_inference_path_equals_the_training_path(rng):
    # network_fast.predict (no caches, in-place tanh, a shared transform of
    # the blurry image); in float64 the numbers must be exactly those of
    # forward_with_cache, which training uses.
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4)
    image = rng.random((2, 33, 29))
    lean = predict(net, image)
    full, _ = net.forward_with_cache(image)
    for lean_scale, full_scale in zip(lean.stage_kernels, full.stage_kernels):
        for a, b in zip(lean_scale, full_scale):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lean.latent, full.latent)


def test_float32_inference_matches_float64(rng):
    net = build_network(5, rng=rng, filter_sizes=(3,), n_filters=4, n_hidden=4)
    image = rng.random((40, 36))
    k64 = net.forward(image).kernel
    for run in (reference_forward, predict):
        out32 = run(net.astype(np.float32), image.astype(np.float32))
        assert out32.kernel.dtype == np.float32
        assert np.abs(out32.kernel - k64).max() <= 1e-4


def reference_forward(net, image, **options):
    return net.forward(image, **options)


@pytest.mark.parametrize("options", [dict(n_stages=1), dict(n_stages=2, n_scales=1),
                                     dict(n_scales=1), {}])
def test_inference_path_takes_the_options_of_forward(rng, options):
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4, n_stages=2, n_pairs=(2, 2))
    image = rng.random((33, 29))
    lean, full = predict(net, image, **options), net.forward(image, **options)
    assert len(lean.stage_kernels) == len(full.stage_kernels)
    np.testing.assert_array_equal(lean.kernel, full.kernel)
    np.testing.assert_array_equal(lean.latent, full.latent)


@pytest.mark.parametrize("kernel_size, scales", [(17, (17,)), (25, (17, 25)),
                                                 (33, (17, 25, 33)), (13, (13,))])
def test_build_network_paper_defaults(kernel_size, scales):
    net = build_network(kernel_size, rng=np.random.default_rng(0))
    arch = net.architecture
    assert arch.kernel_sizes == scales
    assert (arch.n_filters, arch.n_hidden, arch.n_pairs, arch.n_stages) == (32, 32, (2, 2, 4), 3)
    assert arch.beta_k == 1e-4 and arch.filter_sizes == scales
    weight = net.params["scale1.stage3.recombine2.weight"]
    assert weight.shape == (8, 32)
    assert net.params["scale1.stage1.conv.weight"].shape == (32, 1, scales[0], scales[0])
    assert net.params["scale1.stage2.conv.weight"].shape == (32, 2, scales[0], scales[0])


def test_network_rejects_bad_input(rng):
    net = build_network(5, rng=rng, filter_sizes=(3,), n_filters=2, n_hidden=2)
    with pytest.raises(ValueError, match="too small"):
        net.forward(rng.random((8, 30)))
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        net.forward(rng.random((1, 1, 30, 30)))
    with pytest.raises(ValueError, match="n_stages"):
        net.forward(rng.random((30, 30)), n_stages=4)
    with pytest.raises(ValueError, match="true kernel"):
        net.loss_and_grad(rng.random((30, 30)), np.ones((3, 3)))


def test_architecture_dict_round_trip():
    arch = Architecture(kernel_sizes=(17, 25), filter_sizes=(9, 9))
    assert Architecture.from_dict(arch.to_dict()) == arch
    with pytest.raises(ValueError, match="unknown architecture"):
        Architecture.from_dict({**arch.to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match="one entry per stage"):
        Architecture(n_pairs=(2, 2))


def test_truncated_network_runs_the_first_stages(rng):
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4)
    image = rng.random((33, 29))
    short = net.truncated(2)
    assert short.architecture.n_stages == 2
    assert short.architecture.n_pairs == net.architecture.n_pairs[:2]
    assert not any(".stage3." in name for name in short.params)
    # the coarse scale of the short network runs 2 stages, so compare with
    # the full network's stage-2 kernel only where the scales agree
    single = build_network(5, rng=rng, filter_sizes=(3,), n_filters=4, n_hidden=4)
    np.testing.assert_allclose(single.truncated(2).forward(image).kernel,
                               single.forward(image).stage_kernels[0][1],
                               rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError):
        net.truncated(4)


def test_backward_restricted_to_trainable_stages(rng):
    # Stopping the chain rule before frozen stages must not change the
    # gradients of the stages that train.
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4)
    image = rng.random((2, 31, 27))
    output, cache = net.forward_with_cache(image)
    dkernel = rng.standard_normal(output.kernel.shape)
    full, _ = net.backward(dkernel, cache)
    for trainable in (("scale2.",), ("scale2.stage2.", "scale2.stage3."),
                      ("scale1.stage3.", "scale2.")):
        part, _ = net.backward(dkernel, cache, trainable=trainable)
        for name in net.params:
            if name.startswith(trainable):
                np.testing.assert_allclose(part[name], full[name], rtol=1e-12,
                                           atol=1e-15)
    only_last, _ = net.backward(dkernel, cache, trainable=("scale2.stage3.",))
    assert not np.any(only_last["scale1.stage1.conv.weight"])


def test_inference_stages_sets_the_default_of_forward(rng):
    import dataclasses

    from refdeblur.network import Network
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4)
    image = rng.random((33, 29))
    short = Network(dataclasses.replace(net.architecture, inference_stages=2),
                    net.params)
    np.testing.assert_array_equal(short.forward(image).kernel,
                                  net.forward(image, n_stages=2).kernel)
    assert Architecture.from_dict(short.architecture.to_dict()) == short.architecture
    with pytest.raises(ValueError, match="inference_stages"):
        dataclasses.replace(net.architecture, inference_stages=4)


def test_zero_mean_filters_start_blind_to_brightness(rng):
    net = build_network(9, rng=rng, kernel_sizes=(5, 9), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4, zero_mean_filters=True)
    for name, value in net.params.items():
        if name.endswith("conv.weight"):
            np.testing.assert_allclose(value.sum(axis=(-2, -1)), 0.0, atol=1e-12)
    # A brightness change of the input leaves the first convolution unchanged.
    stage = net.scales[0][0]
    image = rng.random((1, 1, 20, 20))
    conv_params = {"weight": net.params["scale1.stage1.conv.weight"],
                   "bias": net.params["scale1.stage1.conv.bias"]}
    a, _ = stage.conv.forward(image, conv_params)
    b, _ = stage.conv.forward(image + 0.25, conv_params)
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert not build_network(9, rng=rng).architecture.zero_mean_filters


RELATIVE = dict(SMALL, beta_k=0.05, beta_k_mode="relative")


def test_scale_network_with_relative_beta_k_gradients(rng):
    # beta_k tied to the feature power (derivations/kernel_quotient.md (K15)-(K17)).
    net = build_network(5, rng=rng, filter_sizes=(3,), n_pairs=(1, 2, 3), **RELATIVE)
    image = rng.random((2, 19, 16))
    errors = _check_every_parameter(net, image, _true_kernels(rng, 2, 5), rng)
    assert max(errors.values()) <= TOL, f"worst {max(errors.values()):.2e}: {errors}"


def test_relative_beta_k_stage_vjp_single_example(rng):
    arch = Architecture(kernel_sizes=(5,), filter_sizes=(3,), **RELATIVE)
    stage = Stage("s.", 2, 5, 3, 2, 2, arch)
    params = stage.init_params(rng)
    stage_input = rng.random((1, 2, 17, 14))
    blurry = rng.random((1, 17, 14))
    names = sorted(params)

    def function(stage_input, *values):
        kernel, latent, _ = stage.forward(stage_input, blurry, dict(zip(names, values)))
        return np.concatenate([kernel.ravel(), latent.ravel()])

    _, _, cache = stage.forward(stage_input, blurry, params)

    def vjp(weight):
        dkernel = weight[:25].reshape(1, 5, 5)
        dlatent = weight[25:].reshape(1, 17, 14)
        dinput, _, grads = stage.backward(dkernel, dlatent, cache)
        return [dinput] + [grads[n] for n in names]

    errors = gradcheck.check_vjp(function, [stage_input] + [params[n] for n in names],
                                 vjp, rng=rng)
    assert max(errors) <= TOL, f"stage rel errs {dict(zip(['input'] + names, errors))}"


def test_inference_path_honours_relative_beta_k(rng):
    net = build_network(7, rng=rng, kernel_sizes=(5, 7), filter_sizes=(3, 5),
                        n_filters=4, n_hidden=4, beta_k=0.05, beta_k_mode="relative")
    image = rng.random((2, 33, 29))
    lean, full = predict(net, image), net.forward(image)
    np.testing.assert_array_equal(lean.kernel, full.kernel)
    np.testing.assert_array_equal(lean.latent, full.latent)
    constant = Network(dataclasses.replace(net.architecture, beta_k_mode="constant"),
                       net.params)
    assert np.abs(constant.forward(image).kernel - full.kernel).max() > 1e-3
    out32 = predict(net.astype(np.float32), image.astype(np.float32))
    assert out32.kernel.dtype == np.float32
    assert np.abs(out32.kernel - full.kernel).max() <= 1e-4


def test_beta_k_mode_round_trip_and_old_dicts():
    arch = Architecture(beta_k=0.05, beta_k_mode="relative")
    assert Architecture.from_dict(arch.to_dict()) == arch
    old = Architecture().to_dict()
    del old["beta_k_mode"]
    assert Architecture.from_dict(old).beta_k_mode == "constant"
    with pytest.raises(ValueError, match="beta_k_mode"):
        Architecture(beta_k_mode="learned")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, m, normalize", [((2, 3, 40, 37), 9, True),
                                                  ((1, 2, 33, 48), 5, False),
                                                  ((1, 1, 300, 260), 17, True)])
def test_inference_kernel_estimate_equals_the_layer(dtype, shape, m, normalize, rng):
    from refdeblur.layers.kernel_quotient import KernelQuotient
    from refdeblur.network_fast import kernel_estimate
    layer = KernelQuotient(m, beta=0.5, normalize=normalize)
    sharp, blurry = rng.standard_normal((2, *shape)).astype(dtype)
    np.testing.assert_array_equal(kernel_estimate(layer, sharp, blurry),
                                  layer.forward(sharp, blurry)[0])
    prior = rng.random((shape[0], m, m)).astype(dtype)   # the layer's path, unchanged
    np.testing.assert_array_equal(kernel_estimate(layer, sharp, blurry, prior=prior),
                                  layer.forward(sharp, blurry, prior=prior)[0])


@pytest.mark.parametrize("shape", [(45, 36), (44, 37), (16, 16)])
def test_row_transforms_equal_numpy(shape, rng):
    from refdeblur._engine.fft import irfft2_rows, rfft2_of_rows
    height, width = shape
    rows = sorted({0, 1, height // 2, height - 1})
    sparse = np.zeros((2, height, width))
    sparse[:, rows] = rng.random((2, len(rows), width))
    np.testing.assert_allclose(rfft2_of_rows(sparse, rows), np.fft.rfft2(sparse),
                               rtol=0, atol=1e-12)
    spectrum = np.fft.rfft2(rng.random((2, height, width)))
    np.testing.assert_allclose(irfft2_rows(spectrum, shape, rows),
                               np.fft.irfft2(spectrum, s=shape)[:, rows], rtol=0, atol=1e-12)
