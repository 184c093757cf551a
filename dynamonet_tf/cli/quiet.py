"""Every command quiet by default: TensorFlow's known-harmless start-up and graph noise hidden
unless ``--verbose`` is given.

What a command printed on a machine without a GPU before this module (TensorFlow 2.20,
Keras 3, Model Garden 2.20), and what hides it:

- ``E ... cuda_platform.cc:51] failed call to cuInit: ... UNKNOWN ERROR (303)`` -- the CUDA
  stream executor finding no GPU, logged at ERROR through TensorFlow's C++ logging (tsl).
  Hidden by ``TF_CPP_MIN_LOG_LEVEL=3``, which must be set before TensorFlow loads.
- ``WARNING: All log messages before absl::InitializeLog() is called are written to STDERR``
  and ``E0000 ... meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: Mutation::Apply
  error: fanout 'gradient_tape/.../ShapeN' exist for missing node '.../conv1_pad/Pad'`` -- grappler
  giving up one fusion of a padded convolution's gradient (the graph runs unfused), logged
  through Abseil's C++ logging, which ignores ``TF_CPP_MIN_LOG_LEVEL``. Hidden by calling
  ``absl::SetMinLogLevel`` in libtensorflow_framework with the same level, through ctypes
  (the library that TensorFlow loads anyway; about 0.15 s earlier than it would).
- ``WARNING:tensorflow:From ...: calling map_fn_v2 (from tensorflow.python.ops.map_fn) with
  back_prop=False is deprecated`` and ``... with dtype is deprecated`` (7 lines) -- Model
  Garden's ``preprocess_ops_3d.decode_jpeg``, which the input pipelines call. Hidden by a
  filter on the ``tensorflow`` Python logger that drops exactly these two records (this
  project calls ``tf.map_fn`` nowhere itself); every other TensorFlow warning still shows.
- The INFO lines of TensorFlow's start-up (oneDNN, cpu_feature_guard, cudart_stub), hidden
  by any level from 1 on, as before.

Besides, Abseil's Python logging (Model Garden logs through it) shows errors only, and
Python's ``warnings`` drop Keras 3.15's ``__array__ implementation doesn't accept a copy
keyword`` DeprecationWarning (NumPy 2 converting Keras tensors; harmless, also filtered in
pyproject.toml's pytest settings). No other warning is filtered: ours still show.

What level 3 hides, and why that is acceptable: C++ log lines of severity ERROR that
TensorFlow prints and then carries on (FATAL ones still print, then abort). An error that
stops a computation -- a shape mismatch, a file that cannot be read or written, an
out-of-memory -- reaches Python as an exception (``tf.errors.OpError`` with its message),
which the command prints or reports itself (tests/test_quiet.py checks that a shape mismatch
still does). The logged-and-ignored ERRORs on a CPU machine are the noise above; where one
matters (a GPU that should be used but is not), ``--verbose`` shows it.

``--verbose`` (or ``TF_CPP_MIN_LOG_LEVEL`` set in the environment, which is respected: its
level is used for both C++ loggers) turns it all back on. The level must be in the
environment before TensorFlow loads, so :func:`quiet_unless_verbose` runs at the top of
each command module, before its first import that loads TensorFlow, and reads ``--verbose``
from ``sys.argv``; ``main`` calls it again with the parsed option (for ``main(argv)`` called
from Python, where only the Python-side settings can still change).

This module imports neither TensorFlow nor anything that does.
"""

import ctypes
import importlib.util
import logging
import mmap
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

VERBOSE_HELP = (
    "show TensorFlow's C++ logs, its deprecation warnings and Abseil's info logs "
    "(hidden by default: they are harmless on a machine without a GPU)"
)
# TF_CPP_MIN_LOG_LEVEL: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR (FATAL always shows).
QUIET_LEVEL = "3"
VERBOSE_LEVEL = "0"

# The two deprecation notices of Model Garden's preprocess_ops_3d.decode_jpeg (tf.map_fn with
# back_prop=False and dtype=), as TensorFlow's deprecation module words them.
_KNOWN_TENSORFLOW_RECORDS = re.compile(
    r"calling map_fn_v2 \(from tensorflow\.python\.ops\.map_fn\) with "
    r"(back_prop=False|dtype) is deprecated"
)
# Python warnings known to be harmless: (message regex, category).
_KNOWN_WARNINGS = (("__array__ implementation doesn't accept a copy keyword", DeprecationWarning),)
# absl::SetMinLogLevel(absl::LogSeverityAtLeast), in whatever inline namespace (lts_YYYYMMDD).
_SET_MIN_LOG_LEVEL = re.compile(
    rb"_ZN4absl(?:\d+lts_\d+)?14SetMinLogLevelENS[0-9_]*18LogSeverityAtLeastE"
)
_FRAMEWORK_LIBRARIES = ("libtensorflow_framework.so.2", "libtensorflow_framework.2.dylib")


class _KnownTensorFlowNoise(logging.Filter):
    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours to drop
            return True
        return not _KNOWN_TENSORFLOW_RECORDS.search(message)


_FILTER = _KnownTensorFlowNoise()


def verbose_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """Whether ``argv`` (default ``sys.argv[1:]``) holds ``--verbose`` (or an abbreviation
    argparse would accept, ``--ve`` on) before any ``--``."""
    for argument in sys.argv[1:] if argv is None else argv:
        if argument == "--":
            break
        if len(argument) >= 4 and "--verbose".startswith(argument):
            return True
    return False


def quiet_unless_verbose(verbose: Union[bool, Sequence[str], None] = None) -> bool:
    """Hides the known-harmless noise (module docstring) unless ``verbose``; returns whether
    verbose. ``verbose``: a bool, or an argv to look for ``--verbose`` in (default
    ``sys.argv[1:]``). Idempotent; a later call with the other answer undoes the Python-side
    settings (the C++ level of tsl is read once, when TensorFlow loads)."""
    if not isinstance(verbose, bool):
        verbose = verbose_requested(verbose)
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = VERBOSE_LEVEL
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_LEVEL)
    _set_absl_cpp_level(os.environ["TF_CPP_MIN_LOG_LEVEL"])

    tensorflow_logger = logging.getLogger("tensorflow")  # the logger TensorFlow will use
    if verbose:
        tensorflow_logger.removeFilter(_FILTER)
    elif _FILTER not in tensorflow_logger.filters:
        tensorflow_logger.addFilter(_FILTER)

    for message, category in _KNOWN_WARNINGS:
        # Inserted first, so the last call's action wins.
        warnings.filterwarnings("default" if verbose else "ignore", message, category)

    try:
        from absl import logging as absl_logging
    except ImportError:  # absl-py comes with TensorFlow; without it there is nothing to quiet
        pass
    else:
        absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.ERROR)
    return verbose


def add_verbose_argument(parser):
    """Declares ``--verbose`` on an argparse parser (read early by
    :func:`quiet_unless_verbose`; declared so that ``--help`` shows it)."""
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)


def _set_absl_cpp_level(level: str) -> None:
    """``absl::SetMinLogLevel(level)`` in TensorFlow's framework library, if it is there and
    exports it; else nothing (the grappler lines then show, nothing worse)."""
    try:
        severity = min(max(int(level), 0), 3)  # kInfo, kWarning, kError, kFatal
    except ValueError:
        return
    function = _absl_set_min_log_level()
    if function is not None:
        function(severity)


_CACHE = {}


def _absl_set_min_log_level():
    if "function" in _CACHE:
        return _CACHE["function"]
    _CACHE["function"] = None
    try:
        spec = importlib.util.find_spec("tensorflow")  # finds, does not import
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(list(spec.submodule_search_locations)[0])
        for name in _FRAMEWORK_LIBRARIES:
            path = folder / name
            if path.is_file():
                symbol = _find_symbol(path)
                if symbol is not None:
                    function = getattr(ctypes.CDLL(str(path)), symbol)
                    function.argtypes = [ctypes.c_int]
                    function.restype = None
                    _CACHE["function"] = function
                break
    except Exception:  # any surprise here must not stop a command
        _CACHE["function"] = None
    return _CACHE["function"]


def _find_symbol(path):
    """The mangled name of absl::SetMinLogLevel in ``path``'s symbol strings (near the start
    of the file: a few milliseconds), or None."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        match = _SET_MIN_LOG_LEVEL.search(data)
        return match.group(0).decode() if match else None
