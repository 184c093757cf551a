"""The command lines of DynamoNet-TF, each a module with ``main(argv=None)``.

Installed as ``dynamonet-train``, ``dynamonet-evaluate``, ``dynamonet-prepare``,
``dynamonet-export``, ``dynamonet-predict``, ``dynamonet-evaluate-frame-prediction`` and
``dynamonet-convert-hara`` (pyproject.toml); the repository's ``train.py``,
``data/prepare.py``, ... call the same mains.
"""

from pathlib import Path

# The YAML presets, shipped inside the package (the repository's configs/ links here).
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
