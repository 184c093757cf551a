"""What every experiment script shares: its command line, its runs, its results file.

An experiment is a list of :class:`Arm` s, configs that differ from the CPU demo's
(``configs/default.yaml``) by a few overrides, each trained once per seed in this process
with :class:`~dynamonet_tf.training.trainer.Trainer`. Runs live in
``<out>/runs/<arm>/seed<k>``; one whose ``report.json`` exists for the same config is
finished and is not trained again, and one stopped midway resumes from its last checkpoint
(the trainer's own resumption). After every run, ``<out>/results.json`` is rewritten with
each run's metrics, its CPU and wall-clock time, their mean and standard deviation per arm,
the exact command, the overrides and the git commit; ``make_results.py`` turns it into
docs/RESULTS.md. ``--collect`` trains nothing: it gathers the finished runs, which is how
processes that shared the work by ``--seeds`` or ``--arms`` end.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import keras
import yaml

from bench.machine import machine
from dynamonet_tf.atomic_files import atomic_write
from dynamonet_tf.config import ConfigError, load_config, to_dict, with_absolute_data_paths
from dynamonet_tf.data.demo import MOTION_FAMILIES
from dynamonet_tf.data.prepare import PrepareError
from dynamonet_tf.layout import REPORT, RUN_CONFIG, run_layout
from dynamonet_tf.training.run_files import read_epoch_log
from dynamonet_tf.training.trainer import Trainer, TrainingError
from experiments.aggregate import summarize_runs
from experiments.claims import FAMILY_PREFIX, RESULTS_DIR, RESULTS_FILE, RESULTS_PAGE
from experiments.datasets import DATA_ROOT, benchmark_data

REPO = Path(__file__).resolve().parent.parent
CONFIG = Path("configs") / "default.yaml"  # the CPU demo: ResNet-10 at 1/8 width, 64 x 64
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
# What training a run cost, beside its report: summed over the sessions that trained it.
COST_FILE = "experiment_cost.json"

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
    "train.balance_every_steps=1",
    "train.frame_prediction_batches=1",
)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One configuration of an experiment.

    ``overrides``: ``SECTION.KEY=VALUE`` strings on top of the experiment's shared ones.
    ``init_from``: the name of an earlier arm whose run of the same seed gives the initial
    weights (matched by layer name, as ``train.py --init-from``).
    ``same_as``: ``(experiment, arm)``, another experiment's arm that trains the same config
    from the same initial weights; its finished run of the same seed, in the results folder
    beside ``--out``, is taken instead of training again (the run's folder is recorded). A
    config that differs (other ``--steps``, say), or a run initialised from another folder
    than this arm's ``init_from`` run, trains its own run.
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
        help="training seeds, one run per arm each (default: 0 1 2 3 4)",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="train nothing: gather the finished runs of --seeds into results.json (after "
        "processes that shared the work by --seeds or --arms)",
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
    if args.collect:
        words.append("--collect")
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
    training = argparse.Namespace(**{**vars(args), "collect": False})  # --collect trains nothing
    return command(training, [seed], out.with_name(f"{out.name}_seed{seed}"))


def finished_report(model_dir, config):
    """The report of a finished run of ``config`` in ``model_dir``, else None."""
    report, saved = Path(model_dir) / REPORT, Path(model_dir) / RUN_CONFIG
    if not report.exists() or not saved.exists():
        return None
    if yaml.safe_load(saved.read_text()) != to_dict(config):
        return None  # another config: the trainer refuses the folder, naming the differences
    return json.loads(report.read_text())


def config_digest(config):
    """A digest of ``config`` that is the same in any checkout at this path: the identity of
    a run recorded in results.json, whose folder a later checkout does not have."""
    values = to_dict(config)
    text = json.dumps(values, sort_keys=True).replace(f"{REPO.as_posix()}/", "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_runs(out):
    """``{(arm, seed): run}`` of the results.json in ``out``, ``{}`` when there is none."""
    path = Path(out) / RESULTS_FILE
    if not path.exists():
        return {}
    results = json.loads(path.read_text())
    return {
        (arm, run["seed"]): run for arm, entry in results["arms"].items() for run in entry["runs"]
    }


def recorded_run(recorded, args, arm, seed, digest, init_dir=None):
    """``(run, shared)``: a run of ``arm`` for ``seed`` in ``recorded`` (``{results folder:
    recorded_runs}``) with the same config digest and initial weights, its own (``shared``
    False) or its ``same_as`` arm's (True), whose folder may be gone (runs are not kept in
    git, their results are); ``(None, False)`` when there is none."""
    places = [(Path(args.out), arm.name, False)]
    if arm.same_as:
        places.append((Path(args.out).parent / arm.same_as[0], arm.same_as[1], True))
    for out, name, shared in places:
        run = recorded.get(out, {}).get((name, seed))
        if run is None or run.get("config_digest") != digest:
            continue
        source = run.get("initialised_from")
        if (source is None) if init_dir is None else (source and _inside(source, init_dir)):
            return run, shared
    return None, False


def _inside(path, folder):
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def finished_run(args, arm, seed, config, init_dir=None):
    """``(model_dir, report)`` of a finished run of ``arm``'s ``config`` for ``seed``: its own,
    else its ``same_as`` arm's, initialised from ``init_dir`` (None: from scratch);
    ``(own model_dir, None)`` when there is none."""
    model_dir = run_dir(args.out, arm.name, seed)
    report = finished_report(model_dir, config)
    if report is None and arm.same_as:
        experiment, other_arm = arm.same_as
        other_dir = run_dir(Path(args.out).parent / experiment, other_arm, seed)
        other_report = finished_report(other_dir, config)
        if other_report is not None:
            source = other_report.get("initialised_from")
            if init_dir is None:
                same_start = source is None
            else:
                same_start = source is not None and _inside(source, init_dir)
            if same_start:
                return other_dir, other_report
    return model_dir, report


def _family_accuracy(per_class):
    """``{family_<name>: top-1}`` over the test videos of each motion family present."""
    accuracies = {}
    for family, labels in MOTION_FAMILIES.items():
        counts = [per_class[label] for label in labels if label in per_class]
        videos = sum(count["videos"] for count in counts)
        if videos:
            correct = sum(count["correct"] for count in counts)
            accuracies[f"{FAMILY_PREFIX}{family}"] = correct / videos
    return accuracies


def metrics(report, epoch_rows=()):
    """The numbers of a run's report, flat: frame prediction (the model's, and copying the
    last frame's as ``copy_<metric>``), video-level accuracy (overall and per motion
    family), the loss terms' gradient shares, validation, and the last epoch's training
    accuracy from ``epoch_rows`` (its log.csv), whichever it has."""
    values = {}
    frame_prediction = report.get("frame_prediction")
    if frame_prediction:
        values.update(frame_prediction["model"])
        values.update({f"copy_{k}": v for k, v in frame_prediction["copy_last_frame"].items()})
        values["clips"] = frame_prediction["clips"]
    accuracy = dict(report.get("video_accuracy") or {})
    per_class = accuracy.pop("per_class", None)
    # Clips of the video-level protocol (every T-frame clip), not next-frame prediction's.
    accuracy["video_clips"] = accuracy.pop("clips", None)
    values.update(
        {
            k: v
            for k, v in accuracy.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    )
    if per_class:
        values.update(_family_accuracy(per_class))
    values.update(report.get("gradient_shares", {}))
    values.update({k: v for k, v in report.items() if k.startswith("val_")})
    if epoch_rows and epoch_rows[-1].get("top1_accuracy"):
        values["top1_accuracy"] = float(epoch_rows[-1]["top1_accuracy"])
    return values


def read_cost(model_dir):
    """``{"cpu_seconds", "wall_seconds"}`` that training the run in ``model_dir`` took, or
    None for a run trained before costs were recorded."""
    path = Path(model_dir) / COST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def trained_at(model_dir):
    """``{"commit", "dirty"}`` of the checkout that trained the run in ``model_dir`` (its
    first session's, from run.json), or None."""
    path = run_layout(model_dir).record
    if not path.exists():
        return None
    sessions = json.loads(path.read_text()).get("sessions") or [{}]
    return sessions[0].get("git")


def train_and_record_cost(trainer, model_dir):
    """``trainer.train()``, adding its CPU (every thread of this process) and wall-clock
    seconds to the run's :data:`COST_FILE`: a resumed run sums its sessions."""
    cpu, wall = time.process_time(), time.perf_counter()
    report = trainer.train()
    cost = read_cost(model_dir) or {"cpu_seconds": 0.0, "wall_seconds": 0.0}
    cost["cpu_seconds"] += time.process_time() - cpu
    cost["wall_seconds"] += time.perf_counter() - wall
    atomic_write(Path(model_dir) / COST_FILE, json.dumps(cost, indent=2) + "\n")
    return report


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
        # The smoke setting and --steps last: they hold for every arm.
        arm.name: [*shared_overrides, *arm.overrides, *base_overrides(args)]
        for arm in arms
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
    # Read once, before this process rewrites its own: runs of other seeds recorded there
    # (by another process, or a session whose run folders are gone) are kept.
    recorded = {Path(args.out): recorded_runs(args.out)}
    earlier_update = recorded_update(args.out)
    for arm in arms:
        if arm.same_as:
            other = Path(args.out).parent / arm.same_as[0]
            recorded[other] = recorded_runs(other)

    def arm_config(arm, seed):
        # Absolute, as the trainer saves it: a finished run is found by its saved config.
        return with_absolute_data_paths(
            load_config(REPO / CONFIG, [*overrides[arm.name], f"train.seed={seed}"])
        )

    def trained_entry(arm, seed, config, init_from, model_dir, report=None, digest=None):
        """The results entry of ``arm``'s run in ``model_dir``, trained first unless
        ``report`` (its finished report) is given."""
        if report is None:
            print(f"\n{args.claim.name}: {arm.name}, seed {seed}, in {model_dir}", flush=True)
            keras.backend.clear_session()  # one process trains every run
            trainer = Trainer(config, model_dir, init_from=init_from, progress=not args.smoke)
            report = train_and_record_cost(trainer, model_dir)
        return {
            "seed": seed,
            "model_dir": str(model_dir),
            "command": seed_command(args, seed),
            "steps": report["steps"],
            "config_digest": digest or config_digest(config),
            "initialised_from": report.get("initialised_from"),
            "cost": read_cost(model_dir),
            "git": trained_at(model_dir),
            "metrics": metrics(report, read_epoch_log(run_layout(model_dir).log)),
        }

    kept = {
        arm.name: [
            run
            for (name, seed), run in sorted(recorded[Path(args.out)].items())
            if name == arm.name
            and seed not in args.seeds
            and run.get("config_digest") == config_digest(arm_config(arm, seed))
        ]
        for arm in arms
    }
    for name, runs in kept.items():
        results["arms"][name]["runs"] = list(runs)
        results["arms"][name]["summary"] = summarize_runs(runs)
    for seed in args.seeds:
        for arm in arms:
            config = arm_config(arm, seed)
            init_from = None
            if arm.init_from:
                init_runs = results["arms"][arm.init_from]["runs"]
                init_run = next((run for run in init_runs if run["seed"] == seed), None)
                if init_run is None:
                    if args.collect or (args.arms and arm.name not in args.arms):
                        continue
                    raise TrainingError(
                        f"arm {arm.name} starts from arm {arm.init_from}'s run of seed {seed}, "
                        f"which has not finished in {args.out}: train it first (--arms "
                        f"{arm.init_from} --seeds {seed})."
                    )
                init_from = Path(init_run["model_dir"])
            digest = config_digest(config)
            model_dir, report = finished_run(args, arm, seed, config, init_from)
            earlier, shared = (
                (None, False)
                if report
                else recorded_run(recorded, args, arm, seed, digest, init_from)
            )
            if earlier:
                entry = results["arms"][arm.name]
                entry["runs"].append(dict(earlier, command=seed_command(args, seed)))
                if shared:  # else a record of this arm's, which says if it was shared
                    entry["runs"][-1]["same_as"] = list(arm.same_as)
                entry["summary"] = summarize_runs(entry["runs"])
                continue
            if report is None and (args.collect or (args.arms and arm.name not in args.arms)):
                continue
            if init_from and not init_from.exists():
                # The run it starts from is recorded but its folder is gone (run folders are
                # not in git): train that run again, here, and record it instead, so that
                # this arm starts from weights whose numbers results.json shows.
                init_arm = next(other for other in arms if other.name == arm.init_from)
                if init_arm.init_from:
                    raise TrainingError(
                        f"arm {arm.name} of seed {seed} starts from {init_from}, recorded but "
                        f"not on this machine, and arm {init_arm.name} itself starts from "
                        f"another run: train seed {seed} anew in another --out."
                    )
                init_dir = run_dir(args.out, init_arm.name, seed)
                print(
                    f"\n{args.claim.name}: arm {arm.name} of seed {seed} starts from "
                    f"{init_from}, recorded but not on this machine: training arm "
                    f"{init_arm.name} of seed {seed} again, in {init_dir}",
                    flush=True,
                )
                init_config = arm_config(init_arm, seed)
                init_entry = trained_entry(init_arm, seed, init_config, None, init_dir)
                init_runs = results["arms"][init_arm.name]["runs"]
                init_runs[:] = [run for run in init_runs if run["seed"] != seed] + [init_entry]
                results["arms"][init_arm.name]["summary"] = summarize_runs(init_runs)
                init_from = init_dir
            entry = results["arms"][arm.name]
            entry["runs"].append(
                trained_entry(arm, seed, config, init_from, model_dir, report, digest)
            )
            if model_dir != run_dir(args.out, arm.name, seed):
                entry["runs"][-1]["same_as"] = list(arm.same_as)
            entry["summary"] = summarize_runs(entry["runs"])
            results["updated"] = _now()
            write_results(args.out, results)
    for entry in results["arms"].values():
        entry["runs"].sort(key=lambda run: run["seed"])
    results["complete"] = all(
        set(args.seeds) <= {run["seed"] for run in entry["runs"]}
        for entry in results["arms"].values()
    )
    # A pass that added no run (a --collect of recorded runs) keeps the time of the last one.
    results.setdefault("updated", earlier_update or _now())
    write_results(args.out, results)
    return results


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def recorded_update(out):
    """When the results.json in ``out`` last gained a run (its ``updated``), or None."""
    path = Path(out) / RESULTS_FILE
    return json.loads(path.read_text()).get("updated") if path.exists() else None


def write_results(out, results):
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(out) / RESULTS_FILE, json.dumps(results, indent=2) + "\n")


def benchmark_overrides(benchmark, stage):
    """The data of a ``stage`` run on the benchmark: pretraining reads the unlabeled clips,
    the labeled stages the training videos, each validating on its holdout; every run is
    scored on the test videos, next frames on all their whole clips."""
    train, val = (
        (benchmark.unlabeled, benchmark.unlabeled_holdout)
        if stage == "pretrain"
        else (benchmark.train, benchmark.holdout)
    )
    return (
        f"train.stage={stage}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"data.eval_files={benchmark.test}",
        "train.frame_prediction_batches=null",
    )


def run_on_benchmark(args, arms):
    """Runs ``arms`` as joint training from scratch on the benchmark."""
    benchmark = benchmark_data(args.data_root, args.smoke)
    return run_experiment(args, arms, benchmark_overrides(benchmark, "joint"))


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
