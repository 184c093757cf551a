"""A grouped 3D convolution that is fast on TensorFlow's CPU backend.

Keras 3 runs a grouped ``Conv3D`` (``groups > 1``) on a TensorFlow CPU through XLA, because
TensorFlow's own CPU kernels have no grouped 3D convolution; on the 2-core development CPU
that made a ResNeXt-101 training step about ten times slower than PyTorch's (docs/DESIGN.md §6).
:class:`GroupedConv3D` is a ``keras.layers.Conv3D`` (same options, same ``kernel`` variable
of shape ``kernel_size + (in_channels // groups, filters)``, so checkpoints and weight
transfers are interchangeable with a plain ``Conv3D``; the class answers to ``Conv3D``'s name,
which ``.weights.h5`` files key layers by) that computes the same convolution with other
TensorFlow ops:

- ``"conv2d"``: one grouped 2D convolution over each output frame. The temporal taps are
  folded into the channels: for output frame ``t`` the ``kt`` input frames it reads are
  stacked inside each group, so that a ``(kh, kw, kt * in/groups, filters)`` kernel with
  ``groups`` groups (the 3D kernel's temporal slices concatenated) computes the 3D
  convolution; output frames go to the batch axis. The frames are taken apart with
  ``unstack`` and put together with ``stack``, whose gradients are cheap (strided slices and
  a 5D kernel transpose, tried first, cost as much as the convolution). TensorFlow runs
  grouped 2D convolutions on the CPU through oneDNN (on by default on x86 Linux;
  ``TF_ENABLE_ONEDNN_OPTS=0`` turns it off, and then TensorFlow has no CPU gradient for them).
- ``"split"``: one dense ``Conv3D`` per group on its slice of channels, concatenated. Works
  everywhere, oneDNN or not; ``groups`` small convolutions cost more op overhead.
- ``"native"``: Keras's own ``Conv3D`` (cuDNN on GPUs; XLA on CPUs, slow there).
- ``"auto"`` (default): ``"native"`` when a GPU is visible when the layer is built (cuDNN
  handles groups natively); otherwise ``"conv2d"`` while oneDNN is on, ``"split"`` when not.
  On the 2-core development CPU (bench/grouped_conv.py, batch 1 and 2, float32 and
  mixed_bfloat16) ``"conv2d"`` was the fastest at every ResNeXt-101 stage shape, and
  ``"native"`` 20-100 times slower than either.

All implementations compute the same numbers up to float rounding (tests/test_grouped_conv3d.py
checks outputs and gradients against Keras's ``Conv3D``). ``"split"`` and ``"conv2d"`` need
the TensorFlow backend and ``channels_last``; otherwise the layer falls back to ``"native"``.
"""

import keras

IMPLEMENTATIONS = ("auto", "native", "split", "conv2d")


def onednn_enabled() -> bool:
    """Whether TensorFlow's CPU ops run through oneDNN in this process."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - a TensorFlow without this private module
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def _gpu_visible():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class GroupedConv3D(keras.layers.Conv3D):
    """``keras.layers.Conv3D`` with a choice of how a grouped convolution is computed.

    Args:
        implementation: ``"auto"``, ``"native"``, ``"split"`` or ``"conv2d"`` (module
            docstring). The choice changes speed only, never the weights or the result.
        **kwargs: those of ``keras.layers.Conv3D``.
    """

    def __init__(self, *args, implementation: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"GroupedConv3D implementation must be one of {', '.join(IMPLEMENTATIONS)}; "
                f"got {implementation!r}."
            )
        self.implementation = implementation
        self._gpu = None

    def build(self, input_shape):
        super().build(input_shape)
        if self.implementation == "auto":
            self._gpu = _gpu_visible()

    def resolved_implementation(self, input_shape):
        """The implementation a call on inputs of ``input_shape`` uses."""
        if (
            self.groups == 1
            or self.implementation == "native"
            or keras.backend.backend() != "tensorflow"
            or self.data_format != "channels_last"
        ):
            return "native"
        if self.implementation != "auto":
            return self.implementation
        if self._gpu is None:
            self._gpu = _gpu_visible()
        if self._gpu:
            return "native"
        if input_shape[1] is not None and onednn_enabled():
            return "conv2d"
        return "split"

    def convolution_op(self, inputs, kernel):
        implementation = self.resolved_implementation(tuple(inputs.shape))
        if implementation == "split":
            return self._split_convolution(inputs, kernel)
        if implementation == "conv2d":
            return self._conv2d_convolution(inputs, kernel)
        return super().convolution_op(inputs, kernel)

    def _split_convolution(self, inputs, kernel):
        import tensorflow as tf

        outputs = [
            tf.nn.convolution(
                group_inputs,
                group_kernel,
                strides=list(self.strides),
                padding=self.padding.upper(),
                data_format="NDHWC",  # explicit: eager gradients read it from the op
                dilations=list(self.dilation_rate),
            )
            for group_inputs, group_kernel in zip(
                tf.split(inputs, self.groups, axis=-1), tf.split(kernel, self.groups, axis=-1)
            )
        ]
        return tf.concat(outputs, axis=-1)

    def _conv2d_convolution(self, inputs, kernel):
        import tensorflow as tf

        taps, kernel_height, kernel_width = self.kernel_size
        stride, stride_height, stride_width = self.strides
        dilation = self.dilation_rate[0]
        group_channels, filters = kernel.shape[-2], kernel.shape[-1]
        time = inputs.shape[1]
        if time is None:
            raise ValueError(
                "GroupedConv3D's conv2d implementation needs a known number of frames."
            )

        # Time: pad as Conv3D's "same"/"valid" would; height and width: conv2d's own padding.
        span = (taps - 1) * dilation + 1
        if self.padding == "same":
            out_time = -(-time // stride)
            total = max((out_time - 1) * stride + span - time, 0)
            inputs = tf.pad(
                inputs, [[0, 0], [total // 2, total - total // 2], [0, 0], [0, 0], [0, 0]]
            )
        else:
            out_time = (time - span) // stride + 1

        shape = tf.shape(inputs)
        height, width = inputs.shape[2], inputs.shape[3]
        height = shape[2] if height is None else height
        width = shape[3] if width is None else width
        # Frames, not strided slices: the gradients of unstack/stack are stack/unstack, where
        # StridedSliceGrad and a 5D transpose of the kernel cost as much as the convolution.
        frames = [
            tf.reshape(frame, (-1, height, width, self.groups, group_channels))
            for frame in tf.unstack(inputs, axis=1)
        ]
        stacked = tf.stack(
            [
                tf.stack([frames[t * stride + tap * dilation] for tap in range(taps)], axis=-2)
                for t in range(out_time)
            ],
            axis=1,
        )  # (batch, out_time, height, width, groups, taps, group_channels)
        stacked = tf.reshape(stacked, (-1, height, width, self.groups * taps * group_channels))
        # (kh, kw, taps * group_channels, filters), input channels ordered (tap, channel).
        kernel_2d = tf.concat(tf.unstack(kernel, axis=0), axis=2)
        outputs = tf.nn.conv2d(
            stacked,
            kernel_2d,
            strides=[1, stride_height, stride_width, 1],
            padding=self.padding.upper(),
            data_format="NHWC",
            dilations=[1] + list(self.dilation_rate[1:]) + [1],
        )
        out_shape = tf.shape(outputs)
        out_height = outputs.shape[1] if outputs.shape[1] is not None else out_shape[1]
        out_width = outputs.shape[2] if outputs.shape[2] is not None else out_shape[2]
        return tf.reshape(outputs, (-1, out_time, out_height, out_width, filters))

    def get_config(self):
        config = super().get_config()
        config.update(implementation=self.implementation)
        return config


# Keras's ``.weights.h5`` files key each layer by its class name (snake_case, numbered in the
# model's order: conv3d, conv3d_1, ...). Answering to ``Conv3D``'s name keeps those files
# interchangeable with models built from plain ``Conv3D`` layers. Serialised configs still
# name this class: registration above recorded it as "dynamonet_tf>GroupedConv3D".
GroupedConv3D.__name__ = "Conv3D"
