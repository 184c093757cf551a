"""Experiments that test the paper's claims on the offline demo data (docs/RESULTS.md).

One script per claim (``frame_prediction``, ``fp_objective``, ``pretraining``,
``backbone_baseline``), each run from the repository root as
``python -m experiments.<name>``; ``make_results.py`` renders their results.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads, as train.py
