"""The benchmarks. They run from the repository root as modules (``python -m bench.run_all``,
``python -m bench.training``), so that they import each other as ``bench.<module>`` and
dynamonet_tf as installed or from the root, without editing ``sys.path``."""
