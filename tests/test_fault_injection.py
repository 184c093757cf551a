"""Fault injection (issue 13): data/prepare.py and export.py killed with SIGKILL at random and
at chosen moments, each kill followed by the same command again.

What a kill may leave, and what the next run must make of it:

- data/prepare.py: after every kill, each shard under its final name, each shard record in
  ``.progress/`` and a manifest, where there, are those of an uninterrupted reference run,
  byte for byte (a final name never holds half a shard); the last run ends with the
  reference's folder, file for file: the same serialized records in the same order in every
  shard (the parent writes the shards and their records in plan order whatever the decoding
  workers' timing, so the order cannot legitimately differ), no video twice, no temporary file
  left, and ``manifest.json`` equal but for ``created``, the time it was written.
- export.py: after every kill ``--out`` is absent (a new export), the earlier export file for
  file (``--overwrite``), or the complete new export: never half of one. The one exception
  is a kill between the two renames of an overwrite, where ``--out`` is absent and the
  earlier export lies whole in ``.<name>.old-*/<name>``, which the next export puts back
  before replacing it. The run folder is untouched (the hash of every file but ``.lock``).
  The killed process leaves only hidden ``.<name>.partial-*`` / ``.<name>.old-*`` folders
  beside ``--out``, and the next export removes them (dynamonet_tf/atomic_files.py,
  ``remove_abandoned_staging``). In TMPDIR it leaves at most the 2 files that TensorFlow's
  AutoGraph writes for Keras' and the SavedModel writer's own functions (deleted only on a
  normal exit): no folder, and none for the export's signatures. The last run's export
  answers a fixed video exactly as the reference export does.
- Neither command leaves a process running after its kill (the decoding workers of
  data/prepare.py end with their parent).

Random moments are fractions, drawn from a seeded generator, of durations measured on this
machine (its speed varies from run to run, the fractions do not): the kill comes that far
into the process's run, or into its writing (from when its first temporary shard or its
staging folder appears). A process that finished before its kill is a valid sample; each
test asserts that at least one kill cut work in progress (the killed process's own
temporary shard or staging folder survives it). Windows too short for a timer (between a
shard's rename and its record, between the two renames of an overwrite, while the plan is
saved) are hit by a wrapper that runs the same command line and SIGKILLs itself there.
"""

import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

import export as export_cli
from dynamonet_tf.atomic_files import remove_abandoned_staging
from dynamonet_tf.config import to_dict
from dynamonet_tf.export import export_saved_model
from dynamonet_tf.layout import RUN_CONFIG
from dynamonet_tf.runs import build_model
from tiny_run import tiny_config
from videos import write_video

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PREPARE = [sys.executable, str(REPO / "data" / "prepare.py")]
EXPORT = [sys.executable, str(REPO / "export.py")]
SEED = 13
POLL = 0.005  # seconds between looks at a running process's output
TIMEOUT = 300  # for any one process; far above the ~10 s each takes

NUM_VIDEOS = 24  # 2 a shard: 12 shards (2 holdout videos), ~1.5 s of decoding on 2 cores

# The same command lines, run by a wrapper that SIGKILLs itself at a chosen moment.
# data/prepare.py: "plan" while saving .progress/plan.json (its temporary written, not yet
# renamed: the first thing a preparation writes); "record" when this run's second shard is
# renamed into place and its record in .progress/ not yet written.
PREPARE_KILLED_AT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from dynamonet_tf.atomic_files import temporary_path
    from dynamonet_tf.data import prepare

    moment, argv = sys.argv[1], sys.argv[2:]
    atomic_write, records = prepare.atomic_write, []

    def atomic_write_dying(path, content, **options):
        path = Path(path)
        if moment == "plan" and path.name == "plan.json":
            temporary_path(path).write_text(content[: len(content) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        if moment == "record" and path.name.endswith(".tfrecord.json"):
            records.append(path)
            if len(records) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        atomic_write(path, content, **options)

    prepare.atomic_write = atomic_write_dying
    from dynamonet_tf.cli.prepare import main

    main(argv)
    """
)
# export.py: SIGKILLs itself when, overwriting, it has renamed the earlier export aside and
# not yet renamed the new one into place.
EXPORT_KILLED_BETWEEN_THE_RENAMES = textwrap.dedent(
    """
    import os, signal, sys

    rename = os.rename

    def rename_dying(source, destination):
        rename(source, destination)
        if ".old-" in os.fspath(destination):
            os.kill(os.getpid(), signal.SIGKILL)

    os.rename = rename_dying
    from dynamonet_tf.cli.export import main

    main(sys.argv[1:])
    """
)


@dataclasses.dataclass
class Outcome:
    """One run of a command: how it ended (-9: killed) and what it was doing then."""

    moment: str  # where the kill was aimed
    returncode: int
    seconds: float  # from start to the kill or to its end
    cut: bool = False  # killed with its own temporary shard or staging folder in place
    state: str = ""  # export.py: what --out held after the kill (absent, earlier, new)
    random: bool = False  # killed at a random moment (else at a chosen one, or not at all)


class Processes:
    """Starts commands, each in its own process group, with a private TMPDIR; kills what is
    left of them (by process id) at the end."""

    def __init__(self, folder):
        self.folder = folder
        self.tmpdir = folder / "tmpdir"
        self.tmpdir.mkdir()
        self.env = dict(os.environ, TMPDIR=str(self.tmpdir))
        self.groups = []
        self.logs = []

    def start(self, command):
        log = self.folder / f"stderr-{len(self.logs)}.txt"
        self.logs.append(log)
        with open(log, "w") as stderr:
            process = subprocess.Popen(
                [str(part) for part in command],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
                start_new_session=True,  # its group: the workers it starts, and only them
            )
        self.groups.append(process.pid)
        process.started = time.monotonic()
        return process

    def stderr(self):
        return self.logs[-1].read_text()[-3000:]

    def survivors(self, wait=10):
        """Processes still running in the groups started (zombies have ended), after waiting
        up to ``wait`` seconds for them to end (a finished command's workers and resource
        tracker end just after it)."""
        deadline = time.monotonic() + wait
        while True:
            alive = self._alive()
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.1)

    def _alive(self):
        alive = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            state, _, group = stat.rsplit(")", 1)[1].split()[:3]
            if int(group) in self.groups and state not in "ZX":
                alive.append(int(entry))
        return alive

    def close(self):
        for pid in self._alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path)
    yield started
    started.close()


def kill(process):
    """SIGKILL to the process itself (as ``kill -9 <pid>``; not to its workers), unless it
    has ended; returns its return code."""
    if process.poll() is None:
        # Not yet waited for, so its pid cannot have been reused even if it just ended.
        os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=TIMEOUT)


def wait_for(process, condition):
    """Waits until ``condition()`` or the process ends; True for the first."""
    deadline = process.started + TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(POLL)
    raise AssertionError("the process neither got there nor ended")


def ended(process):
    """Waits for the process to end; returns its return code and its seconds from start."""
    returncode = process.wait(timeout=TIMEOUT)
    return returncode, time.monotonic() - process.started


def sleep_until(process, moment):
    while process.poll() is None and time.monotonic() < moment:
        time.sleep(POLL)


def file_hashes(folder, skip=()):
    """sha256 of every file under ``folder`` (hidden ones too), by relative path."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in skip
    }


def without_created(manifest_path):
    manifest = json.loads(manifest_path.read_text())
    assert manifest.pop("created")  # the time it was written: the one field that may differ
    return manifest


def shard_records(folder):
    """Every shard's serialized records, in file order, by shard name."""
    return {
        shard.name: [record.numpy() for record in tf.data.TFRecordDataset(str(shard))]
        for shard in sorted(folder.glob("*.tfrecord"))
    }


def media_ids(records):
    ids = []
    for serialized in records:
        example = tf.train.SequenceExample.FromString(serialized)
        ids.append(example.context.feature["clip/media_id"].bytes_list.value[0].decode())
    return ids


# --- data/prepare.py ---------------------------------------------------------------------


def check_prepared_so_far(out, reference_dir, reference, outcome):
    """What a killed preparation may leave: files of the reference run (``reference``: their
    hashes), equal to them, and temporaries."""
    for name, digest in file_hashes(out).items():
        if re.fullmatch(r"(\.progress/)?[^/]+\.tmp-\d+", name):
            continue  # a temporary: never read, cleared by the next run
        assert name in reference, f"{outcome}: {name} is no file of the reference run"
        if name == "manifest.json":
            assert without_created(out / name) == without_created(reference_dir / name)
        else:
            assert digest == reference[name], f"{outcome}: {name} differs from the reference"


def test_prepare_killed_at_random_moments_resumes_to_the_reference_output(tmp_path, processes):
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(NUM_VIDEOS):
        write_video(root / f"clip{i:02d}.avi", 40)

    def arguments(out):
        return ["folder", "--video-root", root, "--out", out]

    options = ["--videos-per-shard", "2", "--workers", "2"]

    # The uninterrupted run, timed: its duration, and how long it writes shards.
    reference_dir = tmp_path / "reference"
    process = processes.start([*PREPARE, *arguments(reference_dir), *options])
    assert wait_for(process, lambda: any(reference_dir.glob("*.tfrecord.tmp-*")))
    writing_from = time.monotonic()
    assert wait_for(process, lambda: (reference_dir / "manifest.json").exists())
    writing = time.monotonic() - writing_from
    assert process.wait(timeout=TIMEOUT) == 0, processes.stderr()
    duration = time.monotonic() - process.started
    reference = file_hashes(reference_dir)

    out = tmp_path / "out"
    command = [*PREPARE, *arguments(out), *options]
    rng = random.Random(SEED)
    outcomes = []

    def own_temporary_shards(process):
        return list(out.glob(f"*.tfrecord.tmp-{process.pid}"))

    # 1. Killed while saving its plan, the first thing it writes.
    process = processes.start(
        [sys.executable, "-c", PREPARE_KILLED_AT, "plan", *arguments(out), *options]
    )
    outcomes.append(Outcome("saving the plan", *ended(process)))
    assert outcomes[-1].returncode == -signal.SIGKILL, processes.stderr()
    # All there is: the plan's half-written temporary (a folder that, until this was fixed,
    # no later run would take as its own).
    assert [p.relative_to(out).as_posix() for p in sorted(out.rglob("*"))] == [
        ".progress",
        f".progress/plan.json.tmp-{process.pid}",
    ]

    # 2. Killed between renaming its second shard into place and recording it.
    process = processes.start(
        [sys.executable, "-c", PREPARE_KILLED_AT, "record", *arguments(out), *options]
    )
    outcomes.append(Outcome("shard renamed, not recorded", *ended(process)))
    assert outcomes[-1].returncode == -signal.SIGKILL, processes.stderr()
    written = sorted(p.name for p in out.glob("*.tfrecord"))
    recorded = sorted(p.name[: -len(".json")] for p in out.glob(".progress/*.tfrecord.json"))
    assert len(written) == 2 and recorded == written[:1]  # the second is there, unrecorded
    check_prepared_so_far(out, reference_dir, reference, outcomes[-1])

    # 3-4. The same command killed at random moments: in the first half of its writing (at
    # least that much is left to write after kill 2, at the reference's speed), then anywhere
    # in its run.
    for moment, fraction in [("writing", rng.random()), ("run", rng.random())]:
        process = processes.start(command)
        if moment == "run":
            sleep_until(process, process.started + fraction * duration)
        elif wait_for(process, lambda process=process: own_temporary_shards(process)):
            sleep_until(process, time.monotonic() + fraction * writing / 2)
        returncode = kill(process)
        outcome = Outcome(
            f"{fraction:.2f} of its {moment}",
            returncode,
            time.monotonic() - process.started,
            cut=returncode == -signal.SIGKILL and bool(own_temporary_shards(process)),
            random=True,
        )
        outcomes.append(outcome)
        assert returncode in (0, -signal.SIGKILL), processes.stderr()
        check_prepared_so_far(out, reference_dir, reference, outcome)

    process = processes.start(command)
    outcomes.append(Outcome("uninterrupted", *ended(process)))
    assert outcomes[-1].returncode == 0, processes.stderr()
    print(f"\nreference: {duration:.1f} s, writing {writing:.1f} s")
    print("\n".join(map(str, outcomes)))
    assert any(outcome.cut for outcome in outcomes if outcome.random), (
        f"no random kill cut a shard being written: {outcomes}"
    )

    # Nothing lost, nothing twice, nothing left over: the reference's files exactly.
    finished = file_hashes(out)
    assert sorted(finished) == sorted(reference)
    assert without_created(out / "manifest.json") == without_created(
        reference_dir / "manifest.json"
    )
    assert {n: d for n, d in finished.items() if n != "manifest.json"} == {
        n: d for n, d in reference.items() if n != "manifest.json"
    }
    records = shard_records(out)
    assert records == shard_records(reference_dir)  # byte-identical, in the same order
    ids = [media_id for shard in records.values() for media_id in media_ids(shard)]
    assert len(ids) == len(set(ids)) == NUM_VIDEOS
    assert sorted(ids) == sorted(p.stem for p in root.iterdir())
    assert not list(processes.tmpdir.iterdir())
    assert processes.survivors() == []


# --- export.py ---------------------------------------------------------------------------

# A fixed input for comparing exports: 2 clips of the run's 8 frames, not at its short side.
VIDEO = np.random.default_rng(7).integers(0, 256, (2, 8, 36, 44, 3), dtype=np.uint8)


def export_outputs(export_dir):
    """Every output of the classifying and frame-predicting signatures on VIDEO."""
    loaded = tf.saved_model.load(str(export_dir))
    outputs = {}
    for signature in ("serving_default", "predict_frames", "motion_features"):
        for key, value in loaded.signatures[signature](video=tf.constant(VIDEO)).items():
            outputs[f"{signature}/{key}"] = value.numpy()
    return outputs


def assert_same_outputs(outputs, expected):
    assert sorted(outputs) == sorted(expected)
    for key, value in outputs.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(value, expected[key], rtol=0, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(value, expected[key], err_msg=key)


@dataclasses.dataclass
class ExportRun:
    run: Path  # the run folder export.py reads
    run_files: dict  # its file hashes
    reference: dict  # outputs of the run's export, written uninterrupted
    seconds: float  # how long writing that export took (in this process: no imports)
    earlier: Path  # an export of other weights, to be overwritten
    earlier_outputs: dict


@pytest.fixture(scope="module")
def export_run(tmp_path_factory):
    """A run folder holding what export.py reads of a train.py run, its config.yaml and
    checkpoints/ (written directly, as in tests/test_export.py: training would add ~20 s),
    the outputs of its export, and an earlier export of other weights."""
    work = tmp_path_factory.mktemp("export_run")
    config = tiny_config(work / "no_data", "joint")
    model = build_model(config)
    logits = model.get_layer("logits")
    kernel, bias = logits.get_weights()
    # Sharper logits make the probabilities depend on the weights and pixels (as in
    # tests/test_export.py), so that the earlier export below answers visibly otherwise.
    logits.set_weights([kernel * 10, bias])
    run = work / "run"
    run.mkdir()
    (run / RUN_CONFIG).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), run / "checkpoints", max_to_keep=1
    ).save()
    run_files = file_hashes(run, skip={".lock"})

    reference = work / "reference"
    start = time.monotonic()
    export_cli.main(["--model-dir", str(run), "--out", str(reference)])
    seconds = time.monotonic() - start

    logits.set_weights([-kernel * 10, bias])
    earlier = work / "earlier"
    export_saved_model(model, earlier, config.data, top_k=5, backbone=config.model.backbone)
    result = ExportRun(
        run, run_files, export_outputs(reference), seconds, earlier, export_outputs(earlier)
    )
    difference = np.abs(
        result.reference["serving_default/probabilities"]
        - result.earlier_outputs["serving_default/probabilities"]
    )
    assert difference.max() > 1e-2  # the tests can tell the two exports apart
    return result


def staging_folders(out):
    """The hidden folders export.py's atomic writes leave beside ``out`` when killed."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(partial|old)-[0-9a-f]{{8}}")
    if not out.parent.exists():
        return set()
    return {p.name for p in out.parent.iterdir() if pattern.fullmatch(p.name)}


def check_export_after_kill(out, export_run, outcome, earlier_files):
    """``out`` is absent (a new export) or the earlier export file for file, or the whole new
    export; the run folder is untouched; beside ``out`` lie only named staging folders."""
    assert file_hashes(export_run.run, skip={".lock"}) == export_run.run_files, outcome
    if out.parent.exists():
        others = {p.name for p in out.parent.iterdir()} - {out.name} - staging_folders(out)
        assert not others, f"{outcome}: unexpected {sorted(others)} beside {out}"
    if not out.exists():
        assert earlier_files is None, f"{outcome}: the earlier export is gone"
        return "absent"
    if earlier_files is not None and file_hashes(out) == earlier_files:
        return "earlier"
    assert_same_outputs(export_outputs(out), export_run.reference)  # a whole new export
    return "new"


def kill_export(processes, command, out, moment, fraction, export_run, duration=None):
    """Runs ``command`` and kills it: ``fraction`` of the way through its writing (from when
    its staging folder appears) or, for moment "run", through ``duration`` from its start."""
    before = staging_folders(out)
    process = processes.start(command)

    def own_staging():
        return staging_folders(out) - before

    if moment == "run":
        sleep_until(process, process.started + fraction * duration)
    elif wait_for(process, own_staging):
        # The reference export took export_run.seconds to load the run and write; the
        # writing is most of it.
        sleep_until(process, time.monotonic() + fraction * 0.5 * export_run.seconds)
    returncode = kill(process)
    assert returncode in (0, -signal.SIGKILL), processes.stderr()
    return Outcome(
        f"{fraction:.2f} of its {moment}",
        returncode,
        time.monotonic() - process.started,
        cut=returncode == -signal.SIGKILL and bool(own_staging()),
        random=True,
    )


def finish_export(processes, command, out, export_run, outcomes):
    """The same command again, uninterrupted: the reference's export, and nothing left."""
    process = processes.start(command)
    outcomes.append(Outcome("uninterrupted", *ended(process)))
    assert outcomes[-1].returncode == 0, processes.stderr()
    print(f"\nreference (in this process): {export_run.seconds:.1f} s")
    print("\n".join(map(str, outcomes)))
    assert any(outcome.cut for outcome in outcomes if outcome.random), (
        f"no random kill cut the export: {outcomes}"
    )
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # leftovers removed
    assert_same_outputs(export_outputs(out), export_run.reference)
    assert file_hashes(export_run.run, skip={".lock"}) == export_run.run_files
    left = [path.name for path in processes.tmpdir.iterdir()]
    autograph = [name for name in left if re.fullmatch(r"__autograph_generated_file\w+\.py", name)]
    assert sorted(left) == sorted(autograph)  # no folder (the metadata asset's was one)
    killed = sum(outcome.returncode == -signal.SIGKILL for outcome in outcomes)
    assert len(autograph) <= 2 * killed, autograph
    assert processes.survivors() == []


def test_export_killed_at_random_moments_onto_a_new_out(tmp_path, processes, export_run):
    out = tmp_path / "exports" / "dynamonet"
    command = [*EXPORT, "--model-dir", export_run.run, "--out", out]
    rng = random.Random(SEED + 1)
    outcomes = [kill_export(processes, command, out, "writing", rng.random(), export_run)]
    outcomes[-1].state = check_export_after_kill(out, export_run, outcomes[-1], None)
    duration = outcomes[0].seconds + export_run.seconds  # about an uninterrupted run
    outcomes.append(kill_export(processes, command, out, "run", rng.random(), export_run, duration))
    outcomes[-1].state = check_export_after_kill(out, export_run, outcomes[-1], None)
    finish_export(processes, command, out, export_run, outcomes)


def test_export_killed_at_a_random_and_a_chosen_moment_with_overwrite(
    tmp_path, processes, export_run
):
    out = tmp_path / "exports" / "dynamonet"
    out.parent.mkdir()
    shutil.copytree(export_run.earlier, out)
    earlier_files = file_hashes(out)
    arguments = ["--model-dir", export_run.run, "--out", out, "--overwrite"]
    command = [*EXPORT, *arguments]
    rng = random.Random(SEED + 2)

    outcomes = [kill_export(processes, command, out, "writing", rng.random(), export_run)]
    outcomes[-1].state = check_export_after_kill(out, export_run, outcomes[-1], earlier_files)
    if outcomes[-1].state == "earlier":  # the earlier export still loads and answers as before
        assert_same_outputs(export_outputs(out), export_run.earlier_outputs)
    else:  # finished before the kill; the next kill needs the earlier export to replace
        shutil.rmtree(out)
        shutil.copytree(export_run.earlier, out)
    # Killed between the two renames of the overwrite: the one moment without an --out, the
    # earlier export whole and aside, and the new one whole in its staging folder.
    process = processes.start([sys.executable, "-c", EXPORT_KILLED_BETWEEN_THE_RENAMES, *arguments])
    outcomes.append(Outcome("between the renames", *ended(process), cut=True))
    assert outcomes[-1].returncode == -signal.SIGKILL, processes.stderr()
    assert not out.exists()
    aside, new = sorted(staging_folders(out))
    assert ".old-" in aside and ".partial-" in new
    assert file_hashes(out.parent / aside / out.name) == earlier_files
    staged = set(file_hashes(out.parent / new))
    assert {"saved_model.pb", "assets/dynamonet_export.json"} < staged
    assert not [name for name in staged if name.startswith(".asset-source")]
    assert file_hashes(export_run.run, skip={".lock"}) == export_run.run_files
    # What the next export does first (atomic_directory): the earlier export is put back.
    remove_abandoned_staging(out)
    assert file_hashes(out) == earlier_files and staging_folders(out) == set()

    finish_export(processes, command, out, export_run, outcomes)
