"""What every experiment script shares: its command line, its runs, its results file.

An experiment is a list of :class:`Arm` s, configs that differ from the CPU demo's
(``configs/default.yaml``) by a few overrides, each trained once per seed in this process
with :class:`~dynamonet_tf.training.trainer.Trainer`. Runs live in
``<out>/runs/<arm>/seed<k>``; one whose ``report.json`` exists for the same config is
finished and is not trained again, and one stopped midway resumes from its last checkpoint
(the trainer's own resumption). After every run, ``<out>/results.json`` is rewritten with
each run's metrics, their mean and standard deviation per arm, the exact command, the
overrides and the git commit; ``make_results.py`` turns it into docs/RESULTS.md.
"""

import argparse
import dataclasses
import datetime
import json
import shlex
import subprocess
import sys
from pathlib import Path

import keras
import yaml

from bench.machine import machine
from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.config import ConfigError, load_config, to_dict
from dynamonet_tf.data.prepare import PrepareError
from dynamonet_tf.layout import REPORT, RUN_CONFIG
from dynamonet_tf.training.trainer import Trainer, TrainingError
from experiments.aggregate import summarize_runs
from experiments.claims import RESULTS_DIR, RESULTS_FILE, RESULTS_PAGE
from experiments.datasets import demo_data

REPO = Path(__file__).resolve().parent.parent
CONFIG = Path("configs") / "default.yaml"  # the CPU demo: ResNet-10 at 1/8 width, 64 x 64
DATA_ROOT = Path("experiments") / "data"
DEFAULT_SEEDS = (0, 1, 2)

# --smoke: the shapes of tests/tiny_run.py on 32 x 32 clips of 4 + 1 frames, 2 steps.
SMOKE_OVERRIDES = (
    "data.num_frames=4",
    "data.crop_size=32",
    "data.short_side=32",
    "data.shuffle_buffer=4",
    "model.head_filters=8",
    "model.ar_units=16",
    "model.dmr_units=16",
    "model.filter_grid=4",
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=2",
    "train.eval_steps=1",
    "train.checkpoint_every_steps=2",
)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One configuration of an experiment.

    ``overrides``: ``SECTION.KEY=VALUE`` strings on top of the experiment's shared ones.
    ``init_from``: the name of an earlier arm whose run of the same seed gives the initial
    weights (matched by layer name, as ``train.py --init-from``).
    ``same_as``: ``(experiment, arm)``, another experiment's arm that trains the same config
    from scratch; its finished run of the same seed, in the results folder beside ``--out``,
    is taken instead of training again (the run's folder is recorded). A config that differs
    (other ``--steps``, say) trains its own run.
    """

    name: str
    overrides: tuple = ()
    init_from: str = None
    same_as: tuple = None


# ---------------------------------------------------------------------- command line


def parse_args(claim, argv=None):
    """The options every experiment script takes; ``claim`` names the script."""
    parser = argparse.ArgumentParser(description=f"{claim.title}: the paper's {claim.source}.")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(DEFAULT_SEEDS),
        help="training seeds, one run per arm each (default: 0 1 2)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results folder (default: {claim.results_dir()}; with --smoke, "
        f"{claim.results_dir(smoke=True)})",
    )
    parser.add_argument("--steps", type=int, help="train every run for N steps, in one epoch")
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=claim.arms,
        metavar="ARM",
        help=f"train only these arms ({', '.join(claim.arms)}); the others' "
        "finished runs are still gathered. Disjoint --arms or --seeds let "
        "processes share the work; an arm that starts from another's run "
        "needs that run finished",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny model for 2 steps on tiny generated videos: checks the "
        "plumbing in seconds; its numbers mean nothing",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DATA_ROOT,
        help=f"where experiment datasets are prepared (default: {DATA_ROOT})",
    )
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds must be distinct and >= 0; got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1; got {args.steps}")
    args.claim = claim
    if args.out is None:
        args.out = claim.results_dir(args.smoke)
    return args


def command(args, seeds=None, out=None):
    """The command line that runs ``args`` again, for ``seeds`` into ``out`` if given."""
    out = Path(out or args.out)
    words = [
        "python",
        "-m",
        f"experiments.{args.claim.name}",
        "--seeds",
        *map(str, seeds or args.seeds),
    ]
    if args.steps is not None:
        words += ["--steps", str(args.steps)]
    if args.arms:
        words += ["--arms", *args.arms]
    if args.smoke:
        words.append("--smoke")
    if out != args.claim.results_dir(args.smoke):
        words += ["--out", str(out)]
    if Path(args.data_root) != DATA_ROOT:
        words += ["--data-root", str(args.data_root)]
    return shlex.join(words)


def base_overrides(args):
    """Overrides every run of ``args`` takes: the smoke setting, the number of steps."""
    overrides = list(SMOKE_OVERRIDES) if args.smoke else []
    if args.steps is not None:
        overrides += ["train.epochs=1", f"train.steps_per_epoch={args.steps}"]
    return overrides


def git_state():
    """``(commit, dirty)`` of the repository, or ``(None, None)``. Dirty: a tracked file
    differs from the commit, other than the results themselves (results files and the
    results page), which experiments running side by side rewrite."""

    def git(*words):
        return subprocess.run(
            ["git", *words], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout

    outputs = [f":(exclude){path.as_posix()}" for path in (RESULTS_DIR, RESULTS_PAGE)]
    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(
            git("status", "--porcelain", "--untracked-files=no", "--", ".", *outputs).strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, dirty


# ---------------------------------------------------------------------- runs


def run_dir(out, arm, seed):
    return Path(out) / "runs" / arm / f"seed{seed}"


def seed_command(args, seed):
    """The command that trains ``seed`` alone again, into a folder of its own (reusing
    ``--out`` would find the run finished, and rewrite results.json for that seed alone)."""
    out = Path(args.out)
    return command(args, [seed], out.with_name(f"{out.name}_seed{seed}"))


def finished_report(model_dir, config):
    """The report of a finished run of ``config`` in ``model_dir``, else None."""
    report, saved = Path(model_dir) / REPORT, Path(model_dir) / RUN_CONFIG
    if not report.exists() or not saved.exists():
        return None
    if yaml.safe_load(saved.read_text()) != to_dict(config):
        return None  # another config: the trainer refuses the folder, naming the differences
    return json.loads(report.read_text())


def finished_run(args, arm, seed, config):
    """``(model_dir, report)`` of a finished run of ``arm``'s ``config`` for ``seed``: its own,
    else its ``same_as`` arm's from scratch; ``(own model_dir, None)`` when there is none."""
    model_dir = run_dir(args.out, arm.name, seed)
    report = finished_report(model_dir, config)
    if report is None and arm.same_as and arm.init_from is None:
        experiment, other_arm = arm.same_as
        other_dir = run_dir(Path(args.out).parent / experiment, other_arm, seed)
        other_report = finished_report(other_dir, config)
        if other_report is not None and "initialised_from" not in other_report:
            return other_dir, other_report
    return model_dir, report


def metrics(report):
    """The numbers of a run's report, flat: frame prediction (the model's, and copying the
    last frame's as ``copy_<metric>``) and video-level accuracy, whichever it has."""
    values = {}
    frame_prediction = report.get("frame_prediction")
    if frame_prediction:
        values.update(frame_prediction["model"])
        values.update({f"copy_{k}": v for k, v in frame_prediction["copy_last_frame"].items()})
        values["clips"] = frame_prediction["clips"]
    accuracy = report.get("video_accuracy")
    if accuracy:
        values.update(accuracy)
    return values


def run_experiment(args, arms, shared_overrides=()):
    """Trains every arm (or those of ``--arms``) for every seed of ``args`` and writes
    ``<out>/results.json`` with every finished run.

    ``arms`` must be the claim's, in its order; an arm's ``init_from`` comes before it.
    Runs go seed by seed, so that an interrupted experiment has whole seeds to show.
    Returns the results (a dict); ``"complete"`` once every arm has every seed.
    """
    if tuple(arm.name for arm in arms) != args.claim.arms:
        raise ValueError(f"arms {[arm.name for arm in arms]} are not the claim's {args.claim.arms}")
    overrides = {
        arm.name: [*shared_overrides, *base_overrides(args), *arm.overrides] for arm in arms
    }
    commit, dirty = git_state()
    results = {
        "experiment": args.claim.name,
        "command": command(args),
        "git_commit": commit,
        "git_dirty": dirty,
        "config": str(CONFIG),
        # How L_FP was reduced: results without this key predate the paper's frame sum.
        "fp_reduction": load_config(
            REPO / CONFIG, [*shared_overrides, *base_overrides(args)]
        ).loss.fp_reduction,
        "machine": {key: machine()[key] for key in ("cpu", "cores", "gpus", "tensorflow", "keras")},
        "seeds": list(args.seeds),
        "steps": args.steps,
        "smoke": args.smoke,
        "complete": False,
        "arms": {
            arm.name: {
                "overrides": overrides[arm.name],
                "init_from": arm.init_from,
                "runs": [],
                "summary": {},
            }
            for arm in arms
        },
    }
    for seed in args.seeds:
        for arm in arms:
            config = load_config(REPO / CONFIG, [*overrides[arm.name], f"train.seed={seed}"])
            model_dir, report = finished_run(args, arm, seed, config)
            if report is None and args.arms and arm.name not in args.arms:
                continue
            if report is None:
                print(f"\n{args.claim.name}: {arm.name}, seed {seed}, in {model_dir}", flush=True)
                init_from = None
                if arm.init_from:
                    init_runs = results["arms"][arm.init_from]["runs"]
                    if not any(run["seed"] == seed for run in init_runs):
                        raise TrainingError(
                            f"arm {arm.name} starts from arm {arm.init_from}'s run of seed {seed}, "
                            f"which has not finished in {args.out}: train it first (--arms "
                            f"{arm.init_from} --seeds {seed})."
                        )
                    init_from = run_dir(args.out, arm.init_from, seed)
                keras.backend.clear_session()  # one process trains every run
                trainer = Trainer(config, model_dir, init_from=init_from, progress=not args.smoke)
                report = trainer.train()
            entry = results["arms"][arm.name]
            entry["runs"].append(
                {
                    "seed": seed,
                    "model_dir": str(model_dir),
                    "command": seed_command(args, seed),
                    "steps": report["steps"],
                    "metrics": metrics(report),
                }
            )
            if model_dir != run_dir(args.out, arm.name, seed):
                entry["runs"][-1]["same_as"] = list(arm.same_as)
            entry["summary"] = summarize_runs(entry["runs"])
            results["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            )
            write_results(args.out, results)
    results["complete"] = all(
        len(entry["runs"]) == len(args.seeds) for entry in results["arms"].values()
    )
    write_results(args.out, results)
    return results


def write_results(out, results):
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(out) / RESULTS_FILE, json.dumps(results, indent=2) + "\n")


def run_on_labeled_demo(args, arms):
    """Runs ``arms`` as joint training on split 1 of the labeled demo set, scored on its test
    videos."""
    demo = demo_data(args.data_root, args.smoke)
    shared = (
        "train.stage=joint",
        f"data.train_files={demo.labeled_train}",
        f"data.eval_files={demo.labeled_test}",
    )
    return run_experiment(args, arms, shared)


def main(run, claim, argv=None):
    """Parses the command line, returns ``run(args)`` and says where the results went; a
    config, data or training error ends the program with its message."""
    args = parse_args(claim, argv)
    try:
        results = run(args)
    except (ConfigError, PrepareError, TrainingError, FileNotFoundError) as error:
        sys.exit(f"error: {error}\n(runs of other settings in {args.out}? pass another --out)")
    print(
        f"\n{claim.name}: {Path(args.out) / RESULTS_FILE}; "
        "python -m experiments.make_results renders docs/RESULTS.md"
    )
    return results
