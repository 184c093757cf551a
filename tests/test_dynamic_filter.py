import keras
import numpy as np
import pytest
import tensorflow as tf

from dynamonet_tf.layers import DynamicFilter

IMPLEMENTATIONS = ["depthwise", "extract_patches", "conv_patches"]


def naive_filter(frames, filters, padding="constant"):
    """The layer's contract, written as loops: out[y, x] = sum_ij f[i, j] x[y+i-k//2, x+j-k//2]."""
    batch, time, height, width, _ = frames.shape
    k = filters.shape[-1]
    half = k // 2
    padded = np.pad(frames, [(0, 0), (0, 0), (half, half), (half, half), (0, 0)], mode=padding)
    out = np.zeros(frames.shape, np.float64)
    for b in range(batch):
        for t in range(time):
            for y in range(height):
                for x in range(width):
                    if filters.ndim == 4:
                        kernel = filters[b, t]
                    else:
                        kernel = filters[b, t, y, x]
                    window = padded[b, t, y : y + k, x : x + k]
                    out[b, t, y, x] = np.einsum("ij,ijc->c", kernel, window)
    return out


def random_inputs(rng, shape, k, per_pixel=False):
    frames = rng.random(shape).astype(np.float32)
    filter_shape = shape[:2] + (shape[2:4] if per_pixel else ()) + (k * k,)
    logits = rng.normal(size=filter_shape) * 2
    filters = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return frames, filters.reshape(filter_shape[:-1] + (k, k)).astype(np.float32)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_matches_naive_loop(implementation, k):
    rng = np.random.default_rng(k)
    frames, filters = random_inputs(rng, (2, 3, 9, 13, 3), k)
    out = DynamicFilter(k, implementation=implementation)(frames, filters)
    np.testing.assert_allclose(out, naive_filter(frames, filters), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("padding", ["reflect", "symmetric"])
def test_padding_modes_match_numpy_pad(implementation, padding):
    rng = np.random.default_rng(1)
    frames, filters = random_inputs(rng, (1, 2, 7, 11, 2), 5)
    out = DynamicFilter(5, implementation=implementation, padding=padding)(frames, filters)
    np.testing.assert_allclose(out, naive_filter(frames, filters, padding), rtol=1e-5, atol=1e-6)


PATCH_IMPLEMENTATIONS = ["extract_patches", "conv_patches"]


@pytest.mark.parametrize("implementation", PATCH_IMPLEMENTATIONS)
@pytest.mark.parametrize("padding", ["constant", "reflect"])
@pytest.mark.parametrize("k", [3, 5])
def test_per_pixel_filters_match_naive_loop(k, padding, implementation):
    rng = np.random.default_rng(2)
    frames, filters = random_inputs(rng, (2, 2, 7, 9, 3), k, per_pixel=True)
    layer_padding = "zeros" if padding == "constant" else padding
    out = DynamicFilter(k, implementation=implementation, per_pixel=True, padding=layer_padding)(
        frames, filters
    )
    np.testing.assert_allclose(out, naive_filter(frames, filters, padding), rtol=1e-5, atol=1e-6)


def test_per_pixel_implementations_have_equal_gradients():
    rng = np.random.default_rng(9)
    frames, filters = random_inputs(rng, (2, 3, 8, 10, 3), 5, per_pixel=True)
    upstream = rng.normal(size=frames.shape).astype(np.float32)
    results = [
        gradients(
            DynamicFilter(5, implementation=implementation, per_pixel=True),
            frames,
            filters,
            upstream,
        )
        for implementation in PATCH_IMPLEMENTATIONS
    ]
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_per_pixel_with_identical_kernels_equals_global_filters():
    rng = np.random.default_rng(3)
    frames, filters = random_inputs(rng, (1, 2, 6, 8, 3), 3)
    tiled = np.broadcast_to(filters[:, :, None, None], (1, 2, 6, 8, 3, 3))
    np.testing.assert_allclose(
        DynamicFilter(3, per_pixel=True)(frames, tiled),
        DynamicFilter(3)(frames, filters),
        rtol=1e-6,
        atol=1e-6,
    )


@pytest.mark.parametrize("shift", [(0, 0), (1, 2), (-2, 1), (2, -2)])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_one_hot_filter_translates_frame_exactly(implementation, shift):
    """Tap (k//2 + dy, k//2 + dx) reads the pixel (y + dy, x + dx): an exact translation."""
    rng = np.random.default_rng(4)
    k, (dy, dx) = 5, shift
    frames = rng.random((2, 3, 10, 12, 3)).astype(np.float32)
    filters = np.zeros((2, 3, k, k), np.float32)
    filters[..., k // 2 + dy, k // 2 + dx] = 1.0
    out = np.asarray(DynamicFilter(k, implementation=implementation)(frames, filters))
    interior = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    shifted = np.roll(frames, (-dy, -dx), axis=(2, 3))
    np.testing.assert_array_equal(out[interior], shifted[interior])


def gradients(layer, frames, filters, upstream):
    frames, filters = tf.constant(frames), tf.constant(filters)
    with tf.GradientTape() as tape:
        tape.watch([frames, filters])
        objective = tf.reduce_sum(layer(frames, filters) * upstream)
    return [g.numpy() for g in tape.gradient(objective, [frames, filters])]


def test_implementations_have_equal_gradients():
    rng = np.random.default_rng(5)
    frames, filters = random_inputs(rng, (2, 3, 9, 13, 3), 5)
    upstream = rng.normal(size=frames.shape).astype(np.float32)
    depthwise = gradients(DynamicFilter(5, implementation="depthwise"), frames, filters, upstream)
    for implementation in PATCH_IMPLEMENTATIONS:
        patches = gradients(
            DynamicFilter(5, implementation=implementation), frames, filters, upstream
        )
        for a, b in zip(depthwise, patches):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_filter_gradient_equals_naive_correlation(implementation):
    """d/d filters[b,t,i,j] of sum(G * out) = sum_{y,x,c} G[b,t,y,x,c] padded[b,t,y+i,x+j,c]."""
    rng = np.random.default_rng(6)
    k = 3
    frames, filters = random_inputs(rng, (1, 2, 5, 7, 2), k)
    upstream = rng.normal(size=frames.shape).astype(np.float32)
    _, filter_gradient = gradients(
        DynamicFilter(k, implementation=implementation), frames, filters, upstream
    )
    padded = np.pad(frames, [(0, 0), (0, 0), (1, 1), (1, 1), (0, 0)])
    expected = np.zeros(filters.shape)
    for i in range(k):
        for j in range(k):
            expected[:, :, i, j] = np.sum(
                upstream * padded[:, :, i : i + 5, j : j + 7], axis=(2, 3, 4)
            )
    np.testing.assert_allclose(filter_gradient, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradients_match_finite_differences(implementation):
    rng = np.random.default_rng(7)
    frames, filters = random_inputs(rng, (1, 2, 5, 6, 2), 3)
    layer = DynamicFilter(3, implementation=implementation)
    theoretical, numerical = tf.test.compute_gradient(
        lambda x, f: layer(x, f), [tf.constant(frames), tf.constant(filters)], delta=1e-2
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=2e-3)


def test_get_config_round_trip():
    layer = DynamicFilter(3, implementation="extract_patches", padding="reflect", name="motion")
    clone = DynamicFilter.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, DynamicFilter)
    assert (restored.kernel_size, restored.implementation, restored.padding) == (
        3,
        "extract_patches",
        "reflect",
    )
    rng = np.random.default_rng(8)
    frames, filters = random_inputs(rng, (1, 2, 6, 6, 3), 3)
    np.testing.assert_array_equal(restored(frames, filters), layer(frames, filters))


def test_default_implementation_is_depthwise_for_global_and_conv_patches_for_per_pixel():
    assert DynamicFilter().implementation == "depthwise"
    assert DynamicFilter(per_pixel=True).implementation == "conv_patches"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_dynamic_batch_inside_tf_function(implementation):
    layer = DynamicFilter(3, implementation=implementation)
    spec = [
        tf.TensorSpec((None, 2, 8, 10, 3), tf.float32),
        tf.TensorSpec((None, 2, 3, 3), tf.float32),
    ]
    apply = tf.function(lambda x, f: layer(x, f), input_signature=spec)
    rng = np.random.default_rng(9)
    for batch in (1, 3):
        frames, filters = random_inputs(rng, (batch, 2, 8, 10, 3), 3)
        np.testing.assert_allclose(
            apply(frames, filters), naive_filter(frames, filters), rtol=1e-5, atol=1e-6
        )
    assert len(apply._list_all_concrete_functions()) == 1


def test_functional_model_with_unknown_batch():
    frames = keras.Input((2, 8, 8, 3))
    filters = keras.Input((2, 3, 3))
    model = keras.Model([frames, filters], DynamicFilter(3)(frames, filters))
    rng = np.random.default_rng(10)
    x, f = random_inputs(rng, (3, 2, 8, 8, 3), 3)
    np.testing.assert_allclose(
        model.predict([x, f], verbose=0), naive_filter(x, f), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_filters_in_float32_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    layer = DynamicFilter(3)
    assert layer.compute_dtype == "float32"
    rng = np.random.default_rng(11)
    frames, filters = random_inputs(rng, (1, 2, 6, 7, 3), 3)
    low = "float16" if policy == "mixed_float16" else "bfloat16"
    out = layer(tf.cast(frames, low), tf.constant(filters))
    assert out.dtype == tf.float32
    rounded = tf.cast(tf.cast(frames, low), tf.float32).numpy()
    np.testing.assert_allclose(out, naive_filter(rounded, filters), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, frames_shape, filters_shape, message",
    [
        ({}, (2, 8, 8, 3), (2, 5, 5), "rank 5"),
        ({}, (1, 2, 8, 8, 3), (1, 2, 25), r"\(batch, time, k, k\)"),
        ({"kernel_size": 3}, (1, 2, 8, 8, 3), (1, 2, 5, 5), r"ending in \(3, 3\)"),
        ({}, (1, 2, 8, 8, 3), (1, 3, 5, 5), "time=2 but filters have time=3"),
        ({}, (2, 2, 8, 8, 3), (1, 2, 5, 5), "batch=2 but filters have batch=1"),
        ({"kernel_size": 7}, (1, 2, 5, 9, 3), (1, 2, 7, 7), "larger than the frame height 5"),
        (
            {"per_pixel": True},
            (1, 2, 8, 8, 3),
            (1, 2, 5, 5),
            r"\(batch, time, height, width, k, k\)",
        ),
        ({"per_pixel": True}, (1, 2, 8, 8, 3), (1, 2, 8, 9, 5, 5), "match the frames' width"),
    ],
)
def test_bad_shapes_are_named(kwargs, frames_shape, filters_shape, message):
    layer = DynamicFilter(**kwargs)
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(frames_shape, np.float32), np.zeros(filters_shape, np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kernel_size": 4}, "odd positive integer"),
        ({"kernel_size": 0}, "odd positive integer"),
        ({"kernel_size": 2.5}, "odd positive integer"),
        ({"implementation": "fft"}, "implementation must be one of"),
        ({"padding": "same"}, "padding must be one of"),
        ({"per_pixel": True, "implementation": "depthwise"}, "per_pixel=True needs"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DynamicFilter(**kwargs)
