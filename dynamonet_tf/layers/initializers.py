"""Initialisers for DynamoNet's heads."""

import math

import keras
from keras import ops

# He initialisation (He et al., ICCV 2015; the paper's [21]) for every layer of the network:
# convolutions as Hara et al.'s backbones (kaiming_normal_, mode="fan_out", ReLU gain), fully
# connected layers with the fan-in form of the same rule.
HE_CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
HE_DENSE_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal"},
}


@keras.saving.register_keras_serializable(package="dynamonet_tf")
class CentreTapBias(keras.initializers.Initializer):
    """Bias for the logits of ``n`` flattened ``k x k`` filters that favours the centre tap.

    After the softmax each filter then puts ``centre_weight`` on its centre tap and spreads
    the rest evenly: the untrained predictor starts near "copy the frame", the baseline it
    must beat, instead of a blur.
    """

    def __init__(self, kernel_size: int, centre_weight: float):
        if not 0.0 < centre_weight < 1.0:
            raise ValueError(f"centre_weight must lie in (0, 1); got {centre_weight!r}.")
        self.kernel_size = int(kernel_size)
        self.centre_weight = float(centre_weight)

    def __call__(self, shape, dtype=None):
        taps = self.kernel_size * self.kernel_size
        if len(shape) != 1 or shape[0] % taps:
            raise ValueError(
                f"CentreTapBias({self.kernel_size}) needs a bias of a multiple of {taps} "
                f"entries; got shape {tuple(shape)}."
            )
        others = taps - 1
        # softmax(centre) = w  <=>  centre logit = log(w * others / (1 - w)), others at 0.
        centre_logit = (
            math.log(self.centre_weight * others / (1.0 - self.centre_weight)) if others else 0.0
        )
        one_filter = ops.one_hot(taps // 2, taps) * centre_logit
        return ops.cast(ops.tile(one_filter, [shape[0] // taps]), dtype or "float32")

    def get_config(self):
        return {"kernel_size": self.kernel_size, "centre_weight": self.centre_weight}
