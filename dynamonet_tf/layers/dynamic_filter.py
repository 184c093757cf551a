"""The dynamic motion filter: each frame filtered by a kernel predicted for that frame.

DynamoNet (paper §3.1, eq. 1) predicts frame t+1 by filtering frame t with a small kernel
that the network generated for this clip and this frame. One kernel acts on every channel
and at every position of its frame; optionally (``per_pixel=True``) a kernel per position,
as in the dynamic local filtering of De Brabandere et al. (NIPS 2016).
"""

from typing import Optional

import keras
import tensorflow as tf

# The implementations the layer uses when none is named: the fastest measured by
# bench/dynamic_filter.py (forward+backward at B=8, T=16, 112x112, k=5, on the 2-core
# development CPU) for each kind of filter. Per-pixel kernels cannot use "depthwise".
DEFAULT_IMPLEMENTATION = "depthwise"
DEFAULT_PER_PIXEL_IMPLEMENTATION = "conv_patches"
IMPLEMENTATIONS = ("depthwise", "extract_patches", "conv_patches")
PADDINGS = {"zeros": "CONSTANT", "reflect": "REFLECT", "symmetric": "SYMMETRIC"}


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class DynamicFilter(keras.layers.Layer):
    """Filters every frame of a clip with its own predicted kernel.

    ``layer(frames, filters)`` with

    - ``frames``: ``(batch, time, height, width, channels)``;
    - ``filters``: ``(batch, time, k, k)``, or ``(batch, time, height, width, k, k)`` when
      ``per_pixel=True``;

    returns ``(batch, time, height, width, channels)`` where::

        out[b, t, y, x, c] = sum_{i, j} filters[b, t, i, j]
                             * frames[b, t, y + i - k // 2, x + j - k // 2, c]

    i.e. a cross-correlation (as ``tf.nn.conv2d``), with frames padded outside their
    borders according to ``padding``.

    The layer computes in float32 whatever the global dtype policy is: the predicted frames
    are compared to targets with a Huber threshold of 0.01, below float16's resolution near 1.

    Args:
        kernel_size: odd side ``k`` of the square kernels.
        implementation: ``"depthwise"`` folds batch and time into the channels of one
            depthwise convolution; ``"extract_patches"`` gathers every ``k x k``
            neighbourhood with ``tf.image.extract_patches`` and contracts it with the
            kernel (the formulation of the paper's reference design); ``"conv_patches"``
            gathers the same neighbourhoods with a convolution by one-hot kernels, whose
            gradient is a convolution too (``extract_patches``'s is a sparse matrix
            product). All compute the same numbers. ``None`` picks the fastest for the kind
            of filter; per-pixel filters need one of the two patch implementations.
        per_pixel: one kernel per output position instead of one per frame.
        padding: ``"zeros"`` (the default, as the paper), ``"reflect"`` or ``"symmetric"``.
    """

    def __init__(
        self,
        kernel_size: int = 5,
        implementation: Optional[str] = None,
        per_pixel: bool = False,
        padding: str = "zeros",
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(
                f"DynamicFilter kernel_size must be an odd positive integer (1, 3, 5, ...) so "
                f"that the kernel has a centre tap; got {kernel_size!r}."
            )
        if padding not in PADDINGS:
            raise ValueError(
                f"DynamicFilter padding must be one of {sorted(PADDINGS)}; got {padding!r}."
            )
        if implementation is None:
            implementation = (
                DEFAULT_PER_PIXEL_IMPLEMENTATION if per_pixel else DEFAULT_IMPLEMENTATION
            )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"DynamicFilter implementation must be one of {list(IMPLEMENTATIONS)} or None; "
                f"got {implementation!r}."
            )
        if per_pixel and implementation == "depthwise":
            raise ValueError(
                "DynamicFilter with per_pixel=True needs implementation 'conv_patches' or "
                f"'extract_patches' (or None); got {implementation!r}."
            )
        self.kernel_size = kernel_size
        self.implementation = implementation
        self.per_pixel = bool(per_pixel)
        self.padding = padding

    def build(self, frames_shape, filters_shape):
        self._check_shapes(frames_shape, filters_shape)
        self.built = True

    def _check_shapes(self, frames_shape, filters_shape):
        frames_shape = tuple(frames_shape)
        filters_shape = tuple(filters_shape)
        k = self.kernel_size
        if len(frames_shape) != 5:
            raise ValueError(
                "DynamicFilter expects frames of rank 5, (batch, time, height, width, "
                f"channels); got shape {frames_shape} (rank {len(frames_shape)})."
            )
        if frames_shape[-1] is not None and frames_shape[-1] < 1:
            raise ValueError(f"DynamicFilter frames have no channels: shape {frames_shape}.")
        if self.per_pixel:
            expected = "(batch, time, height, width, k, k)"
            expected_rank = 6
        else:
            expected = "(batch, time, k, k)"
            expected_rank = 4
        if len(filters_shape) != expected_rank:
            raise ValueError(
                f"DynamicFilter(per_pixel={self.per_pixel}) expects filters of shape {expected}; "
                f"got shape {filters_shape} (rank {len(filters_shape)})."
            )
        if any(d is not None and d != k for d in filters_shape[-2:]):
            raise ValueError(
                f"DynamicFilter(kernel_size={k}) expects filters ending in ({k}, {k}); got "
                f"filters of shape {filters_shape}."
            )
        for axis, name in ((0, "batch"), (1, "time")):
            a, b = frames_shape[axis], filters_shape[axis]
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f"DynamicFilter needs one filter per frame: frames have {name}={a} "
                    f"but filters have {name}={b} (frames {frames_shape}, filters {filters_shape})."
                )
        if self.per_pixel:
            for axis, name in ((2, "height"), (3, "width")):
                a, b = frames_shape[axis], filters_shape[axis]
                if a is not None and b is not None and a != b:
                    raise ValueError(
                        f"DynamicFilter per-pixel filters must match the frames' {name}: "
                        f"frames {frames_shape}, filters {filters_shape}."
                    )
        for axis, name in ((2, "height"), (3, "width")):
            size = frames_shape[axis]
            if size is not None and size < k:
                raise ValueError(
                    f"DynamicFilter kernel_size={k} is larger than the frame {name} {size} "
                    f"(frames {frames_shape}); use a kernel no larger than the frame."
                )

    def call(self, frames, filters) -> "tf.Tensor":
        self._check_shapes(frames.shape, filters.shape)
        frames = tf.cast(frames, tf.float32)
        filters = tf.cast(filters, tf.float32)
        if self.implementation == "depthwise":
            outputs = _filter_depthwise(frames, filters, self.kernel_size, self.padding)
        else:
            outputs = _filter_patches(
                frames, filters, self.kernel_size, self.padding, self.implementation, self.per_pixel
            )
        outputs.set_shape(frames.shape)
        return outputs

    def compute_output_shape(self, frames_shape, filters_shape):
        return tuple(frames_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            implementation=self.implementation,
            per_pixel=self.per_pixel,
            padding=self.padding,
        )
        return config


def _pad_spatial(images, kernel_size, padding):
    """Pads axes 1 and 2 of ``(n, height, width, c)`` images by ``kernel_size // 2``."""
    half = kernel_size // 2
    return tf.pad(images, [[0, 0], [half, half], [half, half], [0, 0]], mode=PADDINGS[padding])


def _filter_depthwise(frames, filters, kernel_size, padding):
    """One depthwise convolution whose channels are the ``batch * time`` frames.

    The colour channels become the convolution's batch, so each (clip, frame) pair is one
    depthwise channel with its own kernel: the kernel is shared over colours for free.
    """
    shape = tf.shape(frames)
    batch, time, height, width, channels = (shape[i] for i in range(5))
    # (channels, height, width, batch * time)
    folded = tf.reshape(
        tf.transpose(frames, [4, 2, 3, 0, 1]), [channels, height, width, batch * time]
    )
    kernels = tf.reshape(
        tf.transpose(filters, [2, 3, 0, 1]), [kernel_size, kernel_size, batch * time, 1]
    )
    if padding == "zeros":
        conv_padding = "SAME"
    else:
        folded = _pad_spatial(folded, kernel_size, padding)
        conv_padding = "VALID"
    filtered = tf.nn.depthwise_conv2d(folded, kernels, [1, 1, 1, 1], conv_padding)
    filtered = tf.reshape(filtered, [channels, height, width, batch, time])
    return tf.transpose(filtered, [3, 4, 1, 2, 0])


def _neighbourhoods(frames, kernel_size, padding):
    """Every ``k x k`` neighbourhood of every pixel, by ``tf.image.extract_patches``.

    Returns ``(batch * time, height, width, k * k, channels)``, taps in row-major order.
    """
    shape = tf.shape(frames)
    batch, time, height, width, channels = (shape[i] for i in range(5))
    images = tf.reshape(frames, [batch * time, height, width, channels])
    if padding == "zeros":
        patch_padding = "SAME"
    else:
        images = _pad_spatial(images, kernel_size, padding)
        patch_padding = "VALID"
    patches = tf.image.extract_patches(
        images,
        sizes=[1, kernel_size, kernel_size, 1],
        strides=[1, 1, 1, 1],
        rates=[1, 1, 1, 1],
        padding=patch_padding,
    )
    return tf.reshape(patches, [batch * time, height, width, kernel_size * kernel_size, channels])


def _conv_neighbourhoods(frames, kernel_size, padding):
    """The neighbourhoods of :func:`_neighbourhoods`, by a convolution with ``k * k`` one-hot
    kernels: colour channels go to the batch, so one single-channel convolution with an
    identity bank of kernels lays out the taps.

    Returns ``(batch * time, channels, height, width, k * k)``.
    """
    shape = tf.shape(frames)
    batch, time, height, width, channels = (shape[i] for i in range(5))
    taps = kernel_size * kernel_size
    images = tf.reshape(
        tf.transpose(frames, [0, 1, 4, 2, 3]), [batch * time * channels, height, width, 1]
    )
    if padding == "zeros":
        conv_padding = "SAME"
    else:
        images = _pad_spatial(images, kernel_size, padding)
        conv_padding = "VALID"
    one_hot = tf.reshape(tf.eye(taps, dtype=images.dtype), [kernel_size, kernel_size, 1, taps])
    patches = tf.nn.conv2d(images, one_hot, [1, 1, 1, 1], conv_padding)
    return tf.reshape(patches, [batch * time, channels, height, width, taps])


def _filter_patches(frames, filters, kernel_size, padding, implementation, per_pixel):
    """Gathers the neighbourhoods (in the layout of ``implementation``) and weights each by
    its filter taps: one set per frame, or per pixel."""
    shape = tf.shape(frames)
    taps = kernel_size * kernel_size
    if implementation == "conv_patches":
        # A broadcast product and a sum: einsum would make the per-pixel contraction a batch
        # of tiny matrix products, measured as slow as extract_patches' gradient.
        patches = _conv_neighbourhoods(frames, kernel_size, padding)
        weights_shape = [-1, 1, shape[2], shape[3], taps] if per_pixel else [-1, 1, 1, 1, taps]
        filtered = tf.reduce_sum(patches * tf.reshape(filters, weights_shape), axis=-1)
        filtered = tf.transpose(filtered, [0, 2, 3, 1])
    else:
        patches = _neighbourhoods(frames, kernel_size, padding)
        if per_pixel:
            weights = tf.reshape(filters, [-1, shape[2], shape[3], taps])
            filtered = tf.einsum("nhwpc,nhwp->nhwc", patches, weights)
        else:
            filtered = tf.einsum("nhwpc,np->nhwc", patches, tf.reshape(filters, [-1, taps]))
    return tf.reshape(filtered, shape)
