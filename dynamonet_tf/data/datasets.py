"""Readers of the official dataset layouts: UCF101, HMDB51, Kinetics-400 and a plain folder.

Each reader turns a folder of videos plus the dataset's own split/annotation files into a
``DatasetIndex``: labelled ``VideoRecord``s in a deterministic order, the class list, and the
videos the split files name but the disk lacks. Readers never decode a video.

The video tree is listed once per read (one ``os.walk``); split files are then resolved
against that listing, so a 300k-video Kinetics folder costs one walk, not one stat per row.
"""

import collections
import csv
import dataclasses
import os
import posixpath

from dynamonet_tf.layout import HOLDOUT, TEST, TRAIN, VAL
from dynamonet_tf.names import UNLABELED

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")
# "holdout" is never read from a split file: dynamonet_tf.data.prepare moves a seeded part of
# each class's train videos there, the set that training validates on (Kinetics' "val" is its
# reported evaluation set, so the holdout has a name of its own).
SUBSETS = (TRAIN, VAL, TEST, HOLDOUT)
SPLITS = (1, 2, 3)
DATASET_NAMES = ("ucf101", "hmdb51", "kinetics400", "folder")

# How many expected paths a "videos missing" error quotes.
_MISSING_SHOWN = 5
_KINETICS_REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end", "split")
_KINETICS_SPLITS = {"train": "train", "val": "val", "validate": "val", "test": "test"}
_KINETICS_SUBSETS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset on disk does not match what the reader expects.

    The message names the file, path or key that was looked at and what would be valid.
    """


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One video of a dataset.

    ``path``: absolute path of the file; ``label``: class index, -1 when unlabeled;
    ``label_name``: class name, "" when unlabeled; ``subset``: one of ``SUBSETS`` (readers
    give "train", "val" or "test"; "holdout" is made by the preparation);
    ``media_id``: an id that is the same on every machine (see each reader).
    """

    path: str
    label: int
    label_name: str
    subset: str
    media_id: str


@dataclasses.dataclass
class DatasetIndex:
    """The videos of one dataset (split).

    ``classes``: class names, list index = label (empty for unlabeled folders); ``videos``:
    ``VideoRecord``s sorted by subset then media id; ``missing``: ``(what the split file
    named, the path looked at)`` for each listed video absent on disk.
    """

    name: str
    classes: list
    videos: list
    missing: list = dataclasses.field(default_factory=list)

    def subset(self, name):
        """Returns the ``VideoRecord``s of subset ``name`` (one of ``SUBSETS``)."""
        if name not in SUBSETS:
            raise DatasetError(f"unknown subset {name!r}; valid subsets: {', '.join(SUBSETS)}")
        return [video for video in self.videos if video.subset == name]

    def counts(self):
        """Returns ``{subset: {class name: number of videos}}``, unlabeled videos under ""."""
        counts = collections.defaultdict(collections.Counter)
        for video in self.videos:
            counts[video.subset][video.label_name] += 1
        return {subset: dict(sorted(counts[subset].items())) for subset in sorted(counts)}


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _require_dir(path, what):
    """Returns ``path`` as an absolute path after checking that it is a directory."""
    if not os.path.exists(path):
        raise DatasetError(f"{what} not found: {path} does not exist; expected a directory")
    if not os.path.isdir(path):
        raise DatasetError(f"{what} {path} is not a directory; expected a directory")
    return os.path.abspath(path)


def _require_file(path, what):
    """Returns ``path`` after checking that it is an existing file."""
    if not os.path.isfile(path):
        raise DatasetError(f"{what} not found: expected the file {path}")
    return path


def _check_split(split):
    """Returns ``split`` after checking that it is one of the official splits 1, 2, 3."""
    # bool is an int subclass: True would otherwise pass as split 1.
    if isinstance(split, bool) or split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(map(str, SPLITS))}; got {split!r}")
    return split


def _read_lines(path):
    """Returns ``[(line number, stripped line)]`` for the non-blank lines of a text file.

    The official lists have CRLF endings and blank trailing lines; universal newlines and
    the strip absorb both.
    """
    try:
        with open(path, encoding="utf-8-sig") as file:
            return [(number, line.strip()) for number, line in enumerate(file, 1) if line.strip()]
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path} is not UTF-8 text: {error}") from None


def _line_error(path, number, line, expected):
    """Returns the DatasetError for a line of a split file that cannot be parsed."""
    return DatasetError(f"{path}, line {number}: cannot parse {line!r}; expected {expected}")


def _video_files(root):
    """Returns the sorted posix paths, relative to ``root``, of every video file under it.

    A video file has a ``VIDEO_EXTENSIONS`` suffix in any letter case. Hidden files and
    folders (names starting with ".", such as macOS ``._clip.mp4`` resource forks) are
    skipped. Symlinked folders are followed, each real folder once.
    """
    found = []
    walked = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in walked:
            subfolders[:] = []  # a symlink cycle or a second link to a folder already listed
            continue
        walked.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = os.path.relpath(folder, root).replace(os.sep, "/")
        for name in names:
            if not name.startswith(".") and name.lower().endswith(VIDEO_EXTENSIONS):
                found.append(posixpath.normpath(posixpath.join(relative, name)))
    return sorted(found)


def _case_insensitive_index(files):
    """Returns ``resolve(relative path) -> real relative path or None`` over ``files``.

    Exact matches win; otherwise the first (sorted) file whose path matches ignoring case,
    because the UCF101 lists spell ``HandStandPushups`` where the disk has
    ``HandstandPushups``.
    """
    exact = set(files)
    folded = {}
    for path in files:
        folded.setdefault(path.lower(), path)

    def resolve(path):
        return path if path in exact else folded.get(path.lower())

    return resolve


def _no_videos_error(root, where):
    """Returns the DatasetError for a dataset without a single video."""
    return DatasetError(
        f"no videos found under {root} {where}; looked recursively for files ending in "
        f"{', '.join(VIDEO_EXTENSIONS)} (any letter case)"
    )


def _check_missing(missing, found, allow_missing, root, source):
    """Raises a DatasetError when listed videos are absent and that is not allowed.

    ``missing``: ``(listed name, expected path)`` pairs; ``found``: how many listed videos
    exist; ``source``: the split files, for the message. With ``allow_missing`` the absent
    videos are tolerated as long as at least one listed video exists.
    """
    if not missing or (allow_missing and found):
        return
    shown = "; ".join(path for _, path in missing[:_MISSING_SHOWN])
    total = len(missing) + found
    message = f"{len(missing)} of the {total} videos named by {source} are absent under {root}"
    if found:
        message += " (pass allow_missing=True to skip them)"
    else:
        message += " (none was found: is video_root the folder that holds the class folders?)"
    raise DatasetError(f"{message}; first expected paths: {shown}")


def _sorted_videos(videos):
    """Returns ``videos`` sorted by subset then media id (the deterministic order)."""
    return sorted(videos, key=lambda video: (video.subset, video.media_id))


def _media_id(relative_path):
    """Returns a relative posix path without its extension: ``"Class/v_Class_g01_c01"``."""
    return posixpath.splitext(relative_path)[0]


# ---------------------------------------------------------------------------------------------
# UCF101


def _read_class_ind(path):
    """Returns the class names of UCF101's ``classInd.txt``, in id order (id 1 first)."""
    by_id = {}
    for number, line in _read_lines(_require_file(path, "UCF101 class list classInd.txt")):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise _line_error(path, number, line, "'<id> <ClassName>', e.g. '1 ApplyEyeMakeup'")
        class_id, name = int(fields[0]), fields[1]
        if class_id in by_id:
            raise DatasetError(f"{path}, line {number}: class id {class_id} is given twice")
        by_id[class_id] = name
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise DatasetError(
            f"{path}: class ids must be 1..{len(by_id)}, each once; got {sorted(by_id)}"
        )
    return [by_id[class_id] for class_id in sorted(by_id)]


def _ucf_class_index(path, number, line, listed, class_ids, class_ind):
    """Returns the label of a UCF101 list entry ``Class/v_Class_gGG_cCC.avi``.

    The class folder is looked up in ``classInd.txt`` ignoring case (the lists and the
    class list disagree on case for HandstandPushups).
    """
    parts = listed.split("/")
    if len(parts) != 2 or not all(parts):
        raise _line_error(
            path, number, line, "'<Class>/<video>.avi', e.g. 'YoYo/v_YoYo_g01_c01.avi'"
        )
    label = class_ids.get(parts[0].lower())
    if label is None:
        raise DatasetError(
            f"{path}, line {number}: class {parts[0]!r} is not in {class_ind} "
            f"(it lists {len(class_ids)} classes)"
        )
    return label


def _read_ucf_list(path, subset, class_ids, class_ind):
    """Returns ``[(listed path, label)]`` of a UCF101 train or test list.

    Train lines are ``<Class>/<video>.avi <id>`` with the 1-based class id, which must agree
    with the class folder; test lines are the path only.
    """
    fields_expected = 2 if subset == "train" else 1
    form = "'<Class>/<video>.avi <class id>'" if subset == "train" else "'<Class>/<video>.avi'"
    entries = []
    for number, line in _read_lines(_require_file(path, f"UCF101 {subset} list")):
        fields = line.split()
        if len(fields) != fields_expected or (subset == "train" and not fields[1].isdigit()):
            raise _line_error(path, number, line, form)
        listed = fields[0]
        label = _ucf_class_index(path, number, line, listed, class_ids, class_ind)
        if subset == "train" and int(fields[1]) - 1 != label:
            raise DatasetError(
                f"{path}, line {number}: {line!r} gives class id {fields[1]} but {class_ind} "
                f"gives class {listed.split('/')[0]!r} the id {label + 1}"
            )
        entries.append((listed, label))
    return entries


def read_ucf101(video_root, splits_dir, split, allow_missing=False):
    """Reads UCF101 split ``split`` (1, 2 or 3).

    ``video_root`` holds ``<Class>/v_<Class>_gGG_cCC.avi``; ``splits_dir`` is the official
    ``ucfTrainTestlist/`` folder (``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt``).
    Listed paths are matched to the disk ignoring case. Class names are those of
    ``classInd.txt``; media ids are ``<class folder>/<file stem>`` as the split list writes
    them, so they agree across machines whatever the case on disk.

    Returns a ``DatasetIndex`` with subsets "train" and "test". Listed videos absent on disk
    raise a DatasetError, or with ``allow_missing`` are recorded in ``missing``.
    """
    split = _check_split(split)
    root = _require_dir(video_root, "UCF101 video_root")
    splits_dir = _require_dir(splits_dir, "UCF101 splits_dir (ucfTrainTestlist/)")
    class_ind = os.path.join(splits_dir, "classInd.txt")
    classes = _read_class_ind(class_ind)
    class_ids = {name.lower(): index for index, name in enumerate(classes)}
    resolve = _case_insensitive_index(_video_files(root))
    videos, missing, lists = [], [], []
    for subset, stem in (("train", "trainlist"), ("test", "testlist")):
        list_path = os.path.join(splits_dir, f"{stem}{split:02d}.txt")
        lists.append(list_path)
        for listed, label in _read_ucf_list(list_path, subset, class_ids, class_ind):
            on_disk = resolve(listed)
            if on_disk is None:
                missing.append((listed, os.path.join(root, *listed.split("/"))))
                continue
            path = os.path.join(root, *on_disk.split("/"))
            videos.append(VideoRecord(path, label, classes[label], subset, _media_id(listed)))
    _check_missing(missing, len(videos), allow_missing, root, " and ".join(lists))
    if not videos:
        raise DatasetError(f"{' and '.join(lists)} name no videos")
    return DatasetIndex("ucf101", classes, _sorted_videos(videos), missing)


# ---------------------------------------------------------------------------------------------
# HMDB51

_HMDB_SUBSETS = {"1": "train", "2": "test"}  # tag 0: not used by this split


def _hmdb_split_files(splits_dir, split):
    """Returns ``{class name: split file path}`` of HMDB51 split ``split``."""
    suffix = f"_test_split{split}.txt"
    files = {
        name[: -len(suffix)]: os.path.join(splits_dir, name)
        for name in os.listdir(splits_dir)
        if name.endswith(suffix) and len(name) > len(suffix)
    }
    if not files:
        raise DatasetError(
            f"no HMDB51 split files for split {split} in {splits_dir}; expected files named "
            f"<class>{suffix}, e.g. {os.path.join(splits_dir, 'brush_hair' + suffix)}"
        )
    return files


def _read_hmdb_split_file(path):
    """Returns ``[(video file name, subset)]`` of one class's split file, tag-0 lines left out.

    Lines are ``<video>.avi <tag>``; names hold punctuation and could hold spaces, so only
    the last whitespace separates the tag.
    """
    entries = []
    for number, line in _read_lines(path):
        fields = line.rsplit(None, 1)
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            expected = "'<video>.avi <tag>' with tag 0 (unused), 1 (train) or 2 (test)"
            raise _line_error(path, number, line, expected)
        if fields[1] != "0":
            entries.append((fields[0], _HMDB_SUBSETS[fields[1]]))
    return entries


def read_hmdb51(video_root, splits_dir, split, allow_missing=False):
    """Reads HMDB51 split ``split`` (1, 2 or 3).

    ``video_root`` holds ``<class>/<video>.avi``; ``splits_dir`` is the official
    ``testTrainMulti_7030_splits/`` folder of ``<class>_test_split{1,2,3}.txt`` files whose
    lines tag each video 1 (train), 2 (test) or 0 (unused, left out). Class ids follow the
    sorted class names of the chosen split's files; media ids are ``<class>/<file stem>``.

    Returns a ``DatasetIndex`` with subsets "train" and "test". Listed videos absent on disk
    raise a DatasetError, or with ``allow_missing`` are recorded in ``missing``.
    """
    split = _check_split(split)
    root = _require_dir(video_root, "HMDB51 video_root")
    splits_dir = _require_dir(splits_dir, "HMDB51 splits_dir (testTrainMulti_7030_splits/)")
    split_files = _hmdb_split_files(splits_dir, split)
    classes = sorted(split_files)
    resolve = _case_insensitive_index(_video_files(root))
    videos, missing = [], []
    for label, name in enumerate(classes):
        for video, subset in _read_hmdb_split_file(split_files[name]):
            listed = f"{name}/{video}"
            on_disk = resolve(listed)
            if on_disk is None:
                missing.append((listed, os.path.join(root, name, video)))
                continue
            path = os.path.join(root, *on_disk.split("/"))
            videos.append(VideoRecord(path, label, name, subset, _media_id(listed)))
    source = os.path.join(splits_dir, f"*_test_split{split}.txt")
    _check_missing(missing, len(videos), allow_missing, root, source)
    if not videos:
        raise DatasetError(f"{source} tag no videos as train (1) or test (2)")
    return DatasetIndex("hmdb51", classes, _sorted_videos(videos), missing)


# ---------------------------------------------------------------------------------------------
# Kinetics-400


@dataclasses.dataclass(frozen=True)
class _KineticsRow:
    label_name: str  # "" when the row has no label (test rows)
    media_id: str
    subset: str


def _annotation_files(annotations):
    """Returns the CSV files of ``annotations``: the file itself, or the folder's ``*.csv``."""
    if os.path.isfile(annotations):
        return [os.path.abspath(annotations)]
    folder = _require_dir(annotations, "Kinetics annotations (a CSV file or a folder of CSVs)")
    names = sorted(name for name in os.listdir(folder) if name.lower().endswith(".csv"))
    files = [os.path.join(folder, name) for name in names]
    if not files:
        raise DatasetError(
            f"no .csv files in {folder}; expected e.g. train.csv, validate.csv, test.csv"
        )
    return files


def _clip_seconds(text, path, line_number, column):
    """Returns a whole number of seconds from a ``time_start``/``time_end`` cell."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = -1.0
    if value < 0 or not value.is_integer():
        raise DatasetError(
            f"{path}, line {line_number}: {column} {text!r} is not a whole number of seconds"
        )
    return int(value)


def _kinetics_row(row, path, line_number):
    """Returns the ``_KineticsRow`` of one CSV row (a dict keyed by the header)."""
    if None in row or any(row[column] is None for column in _KINETICS_REQUIRED_COLUMNS):
        raise DatasetError(
            f"{path}, line {line_number}: the row has a different number of fields than the header"
        )
    split_value = row["split"].strip().lower()
    subset = _KINETICS_SPLITS.get(split_value)
    if subset is None:
        raise DatasetError(
            f"{path}, line {line_number}: split {row['split']!r} is not one of "
            f"{', '.join(_KINETICS_SPLITS)}"
        )
    youtube_id = row["youtube_id"].strip()
    if not youtube_id:
        raise DatasetError(f"{path}, line {line_number}: empty youtube_id")
    label_name = (row.get("label") or "").strip()
    if not label_name and subset != "test":
        raise DatasetError(
            f"{path}, line {line_number}: a {subset} row needs a label; "
            "only test rows may have none"
        )
    start = _clip_seconds(row["time_start"], path, line_number, "time_start")
    end = _clip_seconds(row["time_end"], path, line_number, "time_end")
    return _KineticsRow(label_name, f"{youtube_id}_{start:06d}_{end:06d}", subset)


def _read_kinetics_csv(path):
    """Returns the ``_KineticsRow``s of one annotation CSV.

    The ``label`` column is optional (the original test.csv has none); labels with spaces
    or commas are double-quoted, which the csv module undoes.
    """
    with open(path, encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        absent = [column for column in _KINETICS_REQUIRED_COLUMNS if column not in header]
        if absent:
            raise DatasetError(
                f"{path}: the header {','.join(header)!r} lacks {', '.join(absent)}; expected "
                "label,youtube_id,time_start,time_end,split[,is_cc]"
            )
        reader.fieldnames = header
        return [_kinetics_row(row, path, reader.line_num) for row in reader]


def _check_subsets(subsets):
    """Returns ``subsets`` as a tuple after checking each is a Kinetics subset: "train",
    "val" or "test" (the annotation files know no "holdout")."""
    subsets = (subsets,) if isinstance(subsets, str) else tuple(subsets)
    unknown = [subset for subset in subsets if subset not in _KINETICS_SUBSETS]
    if unknown or not subsets:
        raise DatasetError(
            f"subsets {subsets!r}: each must be one of {', '.join(_KINETICS_SUBSETS)}"
        )
    return subsets


def _stem_index(root):
    """Returns ``{file stem: absolute path}`` of the video files under ``root``.

    Stems stay case-sensitive (YouTube ids are). When one stem has several files, the
    extension earlier in VIDEO_EXTENSIONS wins, then the first path in sorted order.
    """
    index = {}
    rank = {extension: order for order, extension in enumerate(VIDEO_EXTENSIONS)}
    for relative in _video_files(root):
        stem, extension = posixpath.splitext(posixpath.basename(relative))
        candidate = (rank[extension.lower()], relative)
        if stem not in index or candidate < index[stem]:
            index[stem] = candidate
    return {stem: os.path.join(root, *relative.split("/")) for stem, (_, relative) in index.items()}


def read_kinetics400(video_root, annotations, subsets=("train", "val")):
    """Reads Kinetics-400 clips.

    ``annotations``: a CSV file or a folder of CSVs with the header
    ``label,youtube_id,time_start,time_end,split[,is_cc]``; each row's ``split`` column
    (train, val/validate, test) gives its subset, and only rows of ``subsets`` are kept.
    Clips are ``<youtube_id>_<start:06d>_<end:06d>`` plus a VIDEO_EXTENSIONS suffix anywhere
    under ``video_root`` (flat or ``<split>/<label>/``); that name is the media id. Classes
    are the sorted labels of every row read, whatever ``subsets`` keeps, so label indices
    agree between runs over different subsets. Test rows without a label are unlabeled.

    Returns a ``DatasetIndex``. Clips absent on disk (some always are) go to ``missing``;
    only a dataset with none present is an error.
    """
    subsets = _check_subsets(subsets)
    root = _require_dir(video_root, "Kinetics video_root")
    files = _annotation_files(annotations)
    rows = [row for path in files for row in _read_kinetics_csv(path)]
    classes = sorted({row.label_name for row in rows if row.label_name})
    class_ids = {name: index for index, name in enumerate(classes)}
    kept = [row for row in rows if row.subset in subsets]
    if not kept:
        raise DatasetError(f"no rows with split in {', '.join(subsets)} in {', '.join(files)}")
    on_disk = _stem_index(root)
    videos, missing = [], []
    for row in kept:
        path = on_disk.get(row.media_id)
        if path is None:
            missing.append((row.media_id, os.path.join(root, "**", row.media_id + ".*")))
            continue
        label = class_ids.get(row.label_name, UNLABELED)
        videos.append(VideoRecord(path, label, row.label_name, row.subset, row.media_id))
    if not videos:
        raise _no_videos_error(
            root, f"for the {len(kept)} clips of {', '.join(files)} (e.g. {kept[0].media_id}.mp4)"
        )
    return DatasetIndex("kinetics400", classes, _sorted_videos(videos), missing)


# ---------------------------------------------------------------------------------------------
# Unlabeled folder


def read_folder(video_root):
    """Reads every video file under ``video_root``, recursively, as unlabeled training data.

    Media ids are the paths relative to ``video_root`` without extension, so two files that
    differ only by extension (``a.mp4``, ``a.avi``) are refused rather than given one id.

    Returns a ``DatasetIndex`` with no classes and every video in subset "train", label -1.
    """
    root = _require_dir(video_root, "video_root")
    by_id = {}
    for relative in _video_files(root):
        media_id = _media_id(relative)
        if media_id in by_id:
            raise DatasetError(
                f"{os.path.join(root, by_id[media_id])} and {os.path.join(root, relative)} would "
                f"share the media id {media_id!r}; keep one of them"
            )
        by_id[media_id] = relative
    if not by_id:
        raise _no_videos_error(root, "")
    videos = [
        VideoRecord(os.path.join(root, *relative.split("/")), UNLABELED, "", "train", media_id)
        for media_id, relative in by_id.items()
    ]
    return DatasetIndex("folder", [], _sorted_videos(videos), [])


# ---------------------------------------------------------------------------------------------
# Dispatch


def read_dataset(name, video_root, splits=None, split=1, allow_missing=False):
    """Reads dataset ``name`` (ucf101, hmdb51, kinetics400 or folder; any letter case).

    ``splits``: the split folder for ucf101/hmdb51, the annotation CSV or folder for
    kinetics400 (its train and val rows are read), nothing for folder. ``split`` and
    ``allow_missing`` apply to ucf101/hmdb51.

    Returns the reader's ``DatasetIndex``.
    """
    key = str(name).lower()
    if key not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if key == "folder":
        if splits is not None:
            raise DatasetError(f"dataset 'folder' takes no splits; got {splits!r}")
        return read_folder(video_root)
    if splits is None:
        wanted = {
            "ucf101": "the ucfTrainTestlist/ folder",
            "hmdb51": "the testTrainMulti_7030_splits/ folder",
            "kinetics400": "the annotation CSV file or folder",
        }[key]
        raise DatasetError(f"dataset {key!r} needs splits: {wanted}")
    if key == "kinetics400":
        return read_kinetics400(video_root, splits)
    reader = read_ucf101 if key == "ucf101" else read_hmdb51
    return reader(video_root, splits, split, allow_missing)
