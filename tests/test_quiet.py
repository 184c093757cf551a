"""The commands' quiet default (dynamonet_tf/cli/quiet.py): TensorFlow's known-harmless noise
gone, real errors and our own warnings kept, everything back with --verbose."""

import os
import subprocess
import sys

import pytest

from dynamonet_tf.cli.quiet import verbose_requested

# What a command does before its first line of output, in a fresh process: the quiet helper
# at the top, then TensorFlow, the gradient of a padded convolution in a tf.function (grappler's
# remapper fails on it), Model Garden's decode_jpeg (tf.map_fn's deprecation notices), our
# own warnings, and a shape mismatch that must still reach the user.
SCRIPT = """
import warnings
from dynamonet_tf.cli.quiet import quiet_unless_verbose
quiet_unless_verbose()
import tensorflow as tf
from official.vision.ops import preprocess_ops_3d

kernel = tf.Variable(tf.ones([3, 3, 3, 3, 4]))

@tf.function
def step(x):
    with tf.GradientTape() as tape:
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]])
        y = tf.nn.conv3d(padded, kernel, [1, 1, 1, 1, 1], "VALID")
        loss = tf.reduce_sum(tf.nn.relu(y))
    return tape.gradient(loss, kernel)

print(step(tf.ones([1, 4, 8, 8, 3])).shape)
jpeg = tf.io.encode_jpeg(tf.zeros([4, 4, 3], tf.uint8))
print(preprocess_ops_3d.decode_jpeg(tf.stack([jpeg, jpeg]), 3).shape)
tf.get_logger().warning("our own TensorFlow-logger warning")
warnings.warn("our own Python warning")
tf.add(tf.zeros([2]), tf.zeros([3]))
"""

# The lines seen without the helper on a machine without a GPU (its docstring lists them).
NOISE = (
    "failed call to cuInit",
    "remapper failed",
    "All log messages before absl::InitializeLog()",
    "calling map_fn_v2 (from tensorflow.python.ops.map_fn) with back_prop=False is deprecated",
    "oneDNN custom operations are on",
)


def test_verbose_is_read_from_the_command_line():
    assert verbose_requested(["--verbose"])
    assert verbose_requested(["a.mp4", "--verb"])  # an abbreviation argparse accepts
    assert not verbose_requested(["--v"])  # ambiguous with --videos: argparse refuses it
    assert not verbose_requested(["--", "--verbose"])  # a positional after --
    assert not verbose_requested(["--video-root", "x"])


def test_noise_hidden_by_default_errors_kept_and_verbose_shows_it():
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # Both processes at once: each spends most of its ~8 s importing TensorFlow.
    processes = {
        verbose: subprocess.Popen(
            [sys.executable, "-c", SCRIPT, *(["--verbose"] if verbose else [])],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for verbose in (False, True)
    }
    results = {verbose: process.communicate(timeout=120) for verbose, process in processes.items()}

    for verbose, process in processes.items():
        out, err = results[verbose]
        assert process.returncode == 1, err[-3000:]
        assert out.splitlines() == ["(3, 3, 3, 3, 4)", "(2, 4, 4, 3)"], err[-3000:]
        # The real error reaches the user, and our warnings too.
        assert "InvalidArgumentError" in err and "Incompatible shapes: [2] vs. [3]" in err
        assert "our own TensorFlow-logger warning" in err
        assert "UserWarning: our own Python warning" in err

    _, quiet = results[False]
    assert [line for line in NOISE if line in quiet] == []
    _, verbose = results[True]
    assert [line for line in NOISE if line not in verbose] == []


@pytest.mark.parametrize("flag", [False, True])
def test_the_python_side_can_be_switched_back(flag):
    """main(argv) called from Python after the import-time call: the filter follows it."""
    import logging

    from dynamonet_tf.cli import quiet

    logger = logging.getLogger("tensorflow")
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    try:
        quiet.quiet_unless_verbose(flag)
        assert (quiet._FILTER in logger.filters) is not flag
        quiet.quiet_unless_verbose(not flag)
        assert (quiet._FILTER in logger.filters) is flag
    finally:  # as the test session was: its level (conftest's), the filter on
        if level is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = level
        quiet.quiet_unless_verbose(False)
