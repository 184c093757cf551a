"""Weight updates that never put non-finite values into the weights, on any number of replicas.

Why this exists (Keras 3.15, TensorFlow backend). ``LossScaleOptimizer.apply`` under a
strategy that uses ``merge_call`` (``MirroredStrategy`` on CPUs, or on GPUs without XLA) goes
through ``LossScaleOptimizer._tf_apply``: in cross-replica context it runs ``check_finite``
on every replica's gradients and then keeps only the *first* replica's answer
(``experimental_local_results(finite_per_replica)[0]``), on the stated assumption that
"``grads`` is all-reduced across replicas". In a custom loop it is not: the gradients handed
to ``apply`` are each replica's local ones, and the all-reduce happens later, inside the
inner optimizer (``TFOptimizer._backend_update_step`` -> ``_all_reduce_sum_gradients``). So
when only replica 1 overflows, replica 0 says "finite", every replica takes the update
branch, the inner optimizer sums the inf of replica 1 into the gradient of all of them, and
the weights become inf/NaN -- while the loss scale is not lowered. (On strategies without
``merge_call`` each replica would decide alone, and replicas that disagree would not all
join the all-reduce.)

:func:`apply_gradients` makes the decision global before the optimizer sees the gradients:
each replica computes "my gradients are all finite", the flags are all-reduced (a sum of
"non-finite" counts, since ``ReduceOp`` has no MIN), and

- with a ``LossScaleOptimizer``, when any replica is non-finite, every replica's gradients
  are replaced by NaN, so the optimizer's own check, whichever replica it looks at, says
  "non-finite": no weight moves, the loss scale is halved and its growth counter reset, as
  on one device. With finite gradients everywhere the gradients pass unchanged.
- with a plain optimizer, the update is skipped altogether (no weight, slot or
  ``iterations`` change) unless every replica's gradients are finite. The skip is a
  ``tf.cond`` on the all-reduced flag; under ``merge_call`` strategies it is taken in
  cross-replica context, as ``LossScaleOptimizer`` does, because a replica-context ``cond``
  may not hold a branch that calls ``merge_call``.

On one replica (the default strategy, ``OneDeviceStrategy``) a ``LossScaleOptimizer`` is
simply called (its own check is already right), and a plain optimizer is called when the
gradients are finite. All of it is graph-safe: call it inside ``strategy.run`` inside a
``tf.function``, where the trainer used to call ``optimizer.apply``.
"""

import keras
import tensorflow as tf


def _finite(gradient):
    values = gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient
    return tf.reduce_all(tf.math.is_finite(values))


def _locally_finite(gradients):
    flags = [_finite(g) for g in gradients if g is not None]
    return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def _poisoned(gradient, finite):
    """``gradient`` where ``finite``, else the same shape filled with NaN."""
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(
            _poisoned(gradient.values, finite), gradient.indices, gradient.dense_shape
        )
    return tf.where(finite, gradient, tf.constant(float("nan"), gradient.dtype))


def finite_everywhere(gradients, replica_context=None):
    """A scalar bool tensor: True when every replica's ``gradients`` are all finite.

    Call in replica context; every replica gets the same value (one all-reduce of a scalar
    when there are several replicas).
    """
    context = replica_context or tf.distribute.get_replica_context()
    local = _locally_finite(gradients)
    if context is None or context.num_replicas_in_sync == 1:
        return local
    non_finite = context.all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(local), tf.float32)
    )
    return tf.equal(non_finite, 0.0)


def apply_gradients(optimizer, gradients, variables):
    """``optimizer.apply(gradients, variables)``, skipped on every replica if any replica's
    gradients hold an inf or NaN (see the module docstring for why Keras alone does not).

    Call in replica context (inside ``strategy.run``, or anywhere on the default strategy).
    Returns the all-replica "finite" flag (a scalar bool tensor): False means the step was
    skipped (and, with a ``LossScaleOptimizer``, the loss scale lowered).
    """
    gradients, variables = list(gradients), list(variables)
    if tf.distribute.in_cross_replica_context():
        raise ValueError("apply_gradients must be called in replica context (inside strategy.run).")
    context = tf.distribute.get_replica_context()
    scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    if scales_loss and context.num_replicas_in_sync == 1:
        optimizer.apply(gradients, variables)  # its own check sees all the gradients
        return _locally_finite(gradients)
    finite = finite_everywhere(gradients, context)
    if scales_loss:
        optimizer.apply([_poisoned(g, finite) for g in gradients], variables)
        return finite

    def apply_if_finite(finite, gradients):
        def update():
            optimizer.apply(gradients, variables)
            return tf.constant(True)

        return tf.cond(finite, update, lambda: tf.constant(False))

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        # Every replica holds the same flag, so all of them take the same branch (and join
        # the same collectives).
        apply_if_finite(finite, gradients)
    else:

        def cross_replica(strategy, finite, gradients):
            # All replicas computed the same flag (all-reduced above): the first one's is theirs.
            flag = strategy.experimental_local_results(finite)[0]

            def update():
                strategy.extended.call_for_each_replica(
                    optimizer.apply, args=(gradients, variables)
                )
                return tf.constant(True)

            tf.cond(flag, update, lambda: tf.constant(False))

        context.merge_call(cross_replica, args=(finite, gradients))
    return finite


def all_finite(variables):
    """True when every floating-point value of ``variables`` (on every replica) is finite.

    For refusing to write a checkpoint that holds non-finite weights. Non-float variables
    (counters) are ignored.
    """
    flags = []
    for variable in variables:
        value = variable.value if isinstance(variable, keras.Variable) else variable
        if not tf.as_dtype(value.dtype).is_floating:
            continue
        # A distributed variable has one copy per replica; check each.
        components = getattr(value, "values", None)
        if not isinstance(components, (tuple, list)):
            components = (value,)
        flags.extend(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(c))) for c in components)
    return bool(tf.reduce_all(tf.stack(flags)).numpy()) if flags else True
