"""The package installs: pip builds dynamonet-tf into a fresh virtual environment, where
``dynamonet_tf`` (with its configs) and the ``dynamonet-*`` commands work from a folder outside
the repository. Offline: the venv sees this machine's packages (--system-site-packages) and pip
installs only the package (--no-deps), built with the setuptools already there
(--no-build-isolation, --no-index).
"""

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parent.parent
SCRIPTS = (
    "dynamonet-train",
    "dynamonet-evaluate",
    "dynamonet-prepare",
    "dynamonet-export",
    "dynamonet-predict",
    "dynamonet-evaluate-frame-prediction",
    "dynamonet-convert-hara",
)
# Without PYTHONPATH (tests/conftest.py points it at the working tree), so that what runs is
# what pip installed.
ENVIRONMENT = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def run(command, cwd, timeout=300):
    return subprocess.run(
        command, cwd=cwd, env=ENVIRONMENT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv dir, a folder outside the repository) with the package installed in the venv."""
    root = tmp_path_factory.mktemp("packaging")
    # pip builds from a copy of what the package is made of: its build/ and *.egg-info stay
    # out of the working tree, and a file left out of the copy would fail the build here too.
    source = root / "source"
    shutil.copytree(
        REPOSITORY / "dynamonet_tf",
        source / "dynamonet_tf",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPOSITORY / name, source / name)
    env_dir = root / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # ensurepip: offline
    python = env_dir / "bin" / "python"
    probe = run([str(python), "-c", "import setuptools; print(setuptools.__version__)"], root)
    if probe.returncode != 0 or int(probe.stdout.split(".")[0]) < 64:
        found = probe.stdout.strip() or probe.stderr[-300:]
        pytest.skip(f"no setuptools >= 64 for an offline build: {found}")
    result = run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        root,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    outside = root / "elsewhere"
    outside.mkdir()
    return env_dir, outside


def test_the_installed_package_is_imported_outside_the_repository(installed):
    env_dir, outside = installed
    result = run(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "import dynamonet_tf; print(dynamonet_tf.__file__)",
        ],
        outside,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    module = Path(result.stdout.strip().splitlines()[-1]).resolve()
    assert module.is_relative_to(env_dir.resolve()), module
    assert not module.is_relative_to(REPOSITORY)


def test_the_configs_ship_with_the_package_and_their_bases_resolve(installed):
    env_dir, outside = installed
    script = (
        "from dynamonet_tf.cli import CONFIGS_DIR\n"
        "from dynamonet_tf.cli.train import DEFAULT_CONFIG\n"
        "from dynamonet_tf.config import load_config\n"
        "assert DEFAULT_CONFIG.is_file(), DEFAULT_CONFIG\n"
        "names = sorted(path.name for path in CONFIGS_DIR.glob('*.yaml'))\n"
        "for name in names:\n"
        "    load_config(CONFIGS_DIR / name, [])\n"
        "print(CONFIGS_DIR)\n"
        "print(' '.join(names))\n"
    )
    result = run([str(env_dir / "bin" / "python"), "-c", script], outside)
    assert result.returncode == 0, result.stderr[-3000:]
    configs_dir, names = result.stdout.strip().splitlines()[-2:]
    assert Path(configs_dir).resolve().is_relative_to(env_dir.resolve())
    shipped = (REPOSITORY / "dynamonet_tf" / "configs").glob("*.yaml")
    assert names.split() == sorted(path.name for path in shipped)


def test_dynamonet_train_help(installed):
    env_dir, outside = installed
    for name in SCRIPTS:
        assert (env_dir / "bin" / name).is_file(), name
    result = run([str(env_dir / "bin" / "dynamonet-train"), "--help"], outside)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: dynamonet-train ")
    assert "--stage {pretrain,joint,finetune}" in result.stdout
