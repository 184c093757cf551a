"""Static cost of built Keras models: forward FLOPs and trainable parameters."""

import math

import keras

from dynamonet_tf.layers import DynamicFilter, SpatioTemporalChannelCorrelation


def forward_flops(model: keras.Model, batch_size: int = 1) -> int:
    """Forward FLOPs of a built functional ``model`` for ``batch_size`` examples.

    Convention: FLOPs = 2 x multiply-accumulates (MACs), counted for

    - ``Conv3D``: output elements x kernel volume x input channels / groups;
    - ``Dense``: input features x units for each output row, leading non-batch axes
      included (a Dense on ``(batch, n, features)`` counts ``n`` rows);
    - :class:`DynamicFilter`: ``k * k`` per output element (per-pixel kernels alike);
    - :class:`SpatioTemporalChannelCorrelation`: its four Dense layers (kernel sizes, once
      per example); its pooling and gating are not counted.

    Every other layer (BatchNorm, activations, pooling, padding, additions, reshapes, ...)
    counts zero. Nested models (such as DynamoNet's ``backbone``) are counted layer by
    layer. Each layer is counted once, with the shapes of its first call. Shapes are the
    layers' static shapes; every axis but the batch must be known.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    return 2 * batch_size * _macs_per_example(model)


def trainable_parameter_count(model: keras.Model) -> int:
    """Number of trainable scalars of ``model``."""
    return sum(math.prod(weight.shape) for weight in model.trainable_weights)


def _macs_per_example(model):
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += _macs_per_example(layer)
        elif isinstance(layer, keras.layers.Conv3D):
            in_channels_per_group = layer.kernel.shape[-2]
            total += (
                _elements(layer, layer.output.shape)
                * math.prod(layer.kernel_size)
                * in_channels_per_group
            )
        elif isinstance(layer, keras.layers.Dense):
            rows = _elements(layer, layer.input.shape[:-1])
            total += rows * math.prod(layer.kernel.shape)
        elif isinstance(layer, DynamicFilter):
            total += _elements(layer, layer.output.shape) * layer.kernel_size**2
        elif isinstance(layer, SpatioTemporalChannelCorrelation):
            sublayers = (
                layer.channel_squeeze,
                layer.channel_excite,
                layer.temporal_squeeze,
                layer.temporal_excite,
            )
            total += sum(math.prod(dense.kernel.shape) for dense in sublayers)
    return total


def _elements(layer, shape):
    """Elements per example of a ``(batch, ...)`` shape; all non-batch axes must be known."""
    dims = tuple(shape)[1:]
    if any(d is None for d in dims):
        raise ValueError(
            f"Cannot count the FLOPs of layer {layer.name!r}: its shape {tuple(shape)} has an "
            "unknown axis besides the batch. Build the model with a fully known input shape."
        )
    return math.prod(dims)
