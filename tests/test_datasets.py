"""Readers of the official dataset layouts, on small fixture trees with the real quirks.

Video files are empty placeholders: the readers list and match files, they never decode.
"""

import os
import re

import pytest

from dynamonet_tf.data import datasets
from dynamonet_tf.data.datasets import DatasetError, VideoRecord


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_crlf(path, lines, blank_tail=2):
    """Writes ``lines`` with CRLF endings and blank trailing lines, as the official lists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n" * (1 + blank_tail)).encode())
    return path


# ---------------------------------------------------------------------------------------------
# UCF101: three classes, groups g01..g03; split N tests on group gN and trains on the others.

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
# The lists spell the folder and files "HandStandPushups"; the disk folder is "HandstandPushups".
UCF_LISTED = {
    "ApplyEyeMakeup": "ApplyEyeMakeup",
    "HandstandPushups": "HandStandPushups",
    "YoYo": "YoYo",
}


def ucf_listed_path(name, group):
    listed = UCF_LISTED[name]
    return f"{listed}/v_{listed}_g{group:02d}_c01.avi"


@pytest.fixture
def ucf(tmp_path):
    root, splits = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    for name in UCF_CLASSES:
        for group in (1, 2, 3):
            # On disk: the class folder as classInd writes it, the file as the list writes it.
            touch(root / name / f"v_{UCF_LISTED[name]}_g{group:02d}_c01.avi")
    write_crlf(splits / "classInd.txt", [f"{i} {name}" for i, name in enumerate(UCF_CLASSES, 1)])
    for split in (1, 2, 3):
        train = [
            f"{ucf_listed_path(name, g)} {i}"
            for i, name in enumerate(UCF_CLASSES, 1)
            for g in (1, 2, 3)
            if g != split
        ]
        test = [ucf_listed_path(name, split) for name in UCF_CLASSES]
        write_crlf(splits / f"trainlist{split:02d}.txt", train)
        write_crlf(splits / f"testlist{split:02d}.txt", test)
    return root, splits


def test_ucf101_reads_split_1_with_labels_ids_and_subsets(ucf):
    root, splits = ucf
    index = datasets.read_ucf101(root, splits, 1)
    assert index.name == "ucf101"
    assert index.classes == UCF_CLASSES
    assert index.missing == []
    assert len(index.subset("train")) == 6 and len(index.subset("test")) == 3
    assert index.counts() == {
        "test": {name: 1 for name in UCF_CLASSES},
        "train": {name: 2 for name in UCF_CLASSES},
    }
    assert index.subset("test")[0] == VideoRecord(
        path=os.path.join(os.path.abspath(root), "ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01.avi"),
        label=0,
        label_name="ApplyEyeMakeup",
        subset="test",
        media_id="ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01",
    )
    assert [v.media_id for v in index.subset("train") if v.label == 2] == [
        "YoYo/v_YoYo_g02_c01",
        "YoYo/v_YoYo_g03_c01",
    ]
    keys = [(v.subset, v.media_id) for v in index.videos]
    assert keys == sorted(keys)
    assert all(os.path.isfile(v.path) and os.path.isabs(v.path) for v in index.videos)


@pytest.mark.parametrize("split", [2, 3])
def test_ucf101_split_selects_its_own_lists(ucf, split):
    index = datasets.read_ucf101(*ucf, split)
    assert {v.media_id[-7:] for v in index.subset("test")} == {f"g{split:02d}_c01"}
    assert all(f"g{split:02d}" not in v.media_id for v in index.subset("train"))


def test_ucf101_resolves_the_handstand_case_mismatch_to_the_file_on_disk(ucf):
    root, splits = ucf
    handstand = [v for v in datasets.read_ucf101(root, splits, 1).videos if v.label == 1]
    assert len(handstand) == 3
    for video in handstand:
        # The path is the real one (folder "HandstandPushups"), the id and the name as listed.
        real_folder = os.path.join(os.path.abspath(root), "HandstandPushups")
        assert os.path.dirname(video.path) == real_folder
        assert os.path.isfile(video.path)
        assert video.media_id.startswith("HandStandPushups/v_HandStandPushups_g0")
        assert video.label_name == "HandstandPushups"


def test_ucf101_missing_video_is_an_error_unless_allowed(ucf):
    root, splits = ucf
    gone = root / "YoYo" / "v_YoYo_g02_c01.avi"
    gone.unlink()
    message = r"1 of the 9 videos .*allow_missing.*v_YoYo_g02_c01\.avi"
    with pytest.raises(DatasetError, match=message):
        datasets.read_ucf101(root, splits, 1)
    index = datasets.read_ucf101(root, splits, 1, allow_missing=True)
    expected = os.path.join(os.path.abspath(root), "YoYo", "v_YoYo_g02_c01.avi")
    assert index.missing == [("YoYo/v_YoYo_g02_c01.avi", expected)]
    assert len(index.subset("train")) == 5 and len(index.subset("test")) == 3


def test_ucf101_with_no_video_on_disk_fails_even_when_missing_is_allowed(ucf, tmp_path):
    _, splits = ucf
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"9 of the 9 videos .*none was found.*ApplyEyeMakeup"):
        datasets.read_ucf101(empty, splits, 1, allow_missing=True)


@pytest.mark.parametrize("split", [0, 4, "1", True])
def test_split_must_be_1_2_or_3(ucf, split):
    message = r"split must be one of 1, 2, 3; got " + re.escape(repr(split))
    with pytest.raises(DatasetError, match=message):
        datasets.read_ucf101(*ucf, split)
    with pytest.raises(DatasetError, match=r"split must be one of 1, 2, 3"):
        datasets.read_hmdb51(*ucf, split)


def test_ucf101_video_root_must_be_an_existing_directory(ucf, tmp_path):
    _, splits = ucf
    absent = tmp_path / "nowhere"
    message = rf"video_root not found: {re.escape(str(absent))} does not exist"
    with pytest.raises(DatasetError, match=message):
        datasets.read_ucf101(absent, splits, 1)
    a_file = touch(tmp_path / "file.avi")
    with pytest.raises(DatasetError, match=rf"{re.escape(str(a_file))} is not a directory"):
        datasets.read_ucf101(a_file, splits, 1)


def test_ucf101_names_the_missing_split_files(ucf, tmp_path):
    root, splits = ucf
    with pytest.raises(DatasetError, match=r"splits_dir .*not found: .*nowhere does not exist"):
        datasets.read_ucf101(root, tmp_path / "nowhere", 1)
    (splits / "testlist02.txt").unlink()
    expected = re.escape(str(splits / "testlist02.txt"))
    with pytest.raises(DatasetError, match=rf"test list not found: expected the file {expected}$"):
        datasets.read_ucf101(root, splits, 2)
    (splits / "classInd.txt").unlink()
    expected = re.escape(str(splits / "classInd.txt"))
    message = rf"classInd\.txt not found: expected the file {expected}$"
    with pytest.raises(DatasetError, match=message):
        datasets.read_ucf101(root, splits, 1)


def test_ucf101_rejects_a_train_id_that_disagrees_with_the_class_folder(ucf):
    root, splits = ucf
    path = splits / "trainlist01.txt"
    lines = path.read_bytes().decode().split("\r\n")
    lines[2] = "ApplyEyeMakeup/v_ApplyEyeMakeup_g03_c01.avi 3"
    path.write_bytes("\r\n".join(lines).encode())
    message = (
        r"trainlist01\.txt, line 3: .*class id 3 but .*classInd\.txt "
        r"gives class 'ApplyEyeMakeup' the id 1"
    )
    with pytest.raises(DatasetError, match=message):
        datasets.read_ucf101(root, splits, 1)


@pytest.mark.parametrize(
    "file, line, message",
    [
        (
            "trainlist01.txt",
            "YoYo/v_YoYo_g02_c01.avi",
            r"trainlist01\.txt, line 2: cannot parse 'YoYo/v_YoYo_g02_c01\.avi'; "
            r"expected '<Class>/<video>\.avi <class id>'",
        ),
        (
            "trainlist01.txt",
            "YoYo/v_YoYo_g02_c01.avi three",
            r"trainlist01\.txt, line 2: cannot parse 'YoYo/v_YoYo_g02_c01\.avi three'",
        ),
        (
            "trainlist01.txt",
            "v_YoYo_g02_c01.avi 3",
            r"trainlist01\.txt, line 2: cannot parse 'v_YoYo_g02_c01\.avi 3'; "
            r"expected '<Class>/<video>\.avi'",
        ),
        (
            "testlist01.txt",
            "YoYo/v_YoYo_g01_c01.avi 3",
            r"testlist01\.txt, line 2: cannot parse 'YoYo/v_YoYo_g01_c01\.avi 3'; "
            r"expected '<Class>/<video>\.avi'$",
        ),
        (
            "testlist01.txt",
            "Juggling/v_Juggling_g01_c01.avi",
            r"testlist01\.txt, line 2: class 'Juggling' is not in .*classInd\.txt",
        ),
        (
            "classInd.txt",
            "two YoYo",
            r"classInd\.txt, line 2: cannot parse 'two YoYo'; expected '<id> <ClassName>'",
        ),
        ("classInd.txt", "1 YoYo", r"classInd\.txt, line 2: class id 1 is given twice"),
        ("classInd.txt", "5 YoYo", r"classInd\.txt: class ids must be 1\.\.3, each once"),
    ],
)
def test_ucf101_reports_the_file_and_line_it_cannot_use(ucf, file, line, message):
    root, splits = ucf
    path = splits / file
    lines = path.read_bytes().decode().split("\r\n")
    lines[1] = line
    path.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(DatasetError, match=message):
        datasets.read_ucf101(root, splits, 1)


# ---------------------------------------------------------------------------------------------
# HMDB51: real punctuation in names, trailing spaces, tags 0/1/2.

HMDB = {
    "brush_hair": [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", [1, 2, 1]),
        ("Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", [2, 1, 0]),
        ("Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi", [0, 0, 2]),
    ],
    "punch": [
        ("American_History_X_(1998)_punch_h_nm_np1_fr_bad_3.avi", [1, 1, 2]),
        ("Fight_Club_'99_@_home;_punch+kick_u_cm_np2_le_bad_1.avi", [2, 0, 1]),
    ],
    "walk": [
        ("#122_Cleaning_Up_The_Beach_u_nm_np1_ba_goo_0.avi", [1, 2, 1]),
        ("Glory_Road!_&_Co_walk_f_cm_np1_fr_med_10.avi", [2, 1, 1]),
        # A space inside the name: only the last whitespace separates the tag.
        ("Old School_walk_f_nm_np1_ri_med_2.avi", [0, 1, 2]),
    ],
}


@pytest.fixture
def hmdb(tmp_path):
    root, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    for name, videos in HMDB.items():
        for video, _ in videos:
            touch(root / name / video)
        for split in (1, 2, 3):
            # The official files end each line with a space.
            lines = [f"{video} {tags[split - 1]} " for video, tags in videos]
            write_crlf(splits / f"{name}_test_split{split}.txt", lines, blank_tail=0)
    return root, splits


def hmdb_expected(split, tag):
    return sorted(
        f"{name}/{video[:-4]}"
        for name, videos in HMDB.items()
        for video, tags in videos
        if tags[split - 1] == tag
    )


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_reads_train_and_test_and_leaves_out_tag_0(hmdb, split):
    index = datasets.read_hmdb51(*hmdb, split)
    assert index.name == "hmdb51"
    assert index.classes == ["brush_hair", "punch", "walk"]
    assert [v.media_id for v in index.subset("train")] == hmdb_expected(split, 1)
    assert [v.media_id for v in index.subset("test")] == hmdb_expected(split, 2)
    unused = set(hmdb_expected(split, 0))
    assert unused and not unused & {v.media_id for v in index.videos}
    assert index.missing == []


def test_hmdb51_records_keep_punctuated_names_and_sorted_class_ids(hmdb):
    root, splits = hmdb
    index = datasets.read_hmdb51(root, splits, 1)
    assert (len(index.subset("train")), len(index.subset("test"))) == (3, 3)
    by_id = {v.media_id: v for v in index.videos}
    beach = by_id["walk/#122_Cleaning_Up_The_Beach_u_nm_np1_ba_goo_0"]
    assert beach == VideoRecord(
        os.path.join(
            os.path.abspath(root), "walk", "#122_Cleaning_Up_The_Beach_u_nm_np1_ba_goo_0.avi"
        ),
        2,
        "walk",
        "train",
        "walk/#122_Cleaning_Up_The_Beach_u_nm_np1_ba_goo_0",
    )
    assert by_id["punch/American_History_X_(1998)_punch_h_nm_np1_fr_bad_3"].label == 1
    assert by_id["punch/Fight_Club_'99_@_home;_punch+kick_u_cm_np2_le_bad_1"].subset == "test"
    assert by_id["walk/Glory_Road!_&_Co_walk_f_cm_np1_fr_med_10"].subset == "test"
    assert all(os.path.isfile(v.path) for v in index.videos)
    per_class = {"brush_hair": 1, "punch": 1, "walk": 1}
    assert index.counts() == {"test": per_class, "train": per_class}


def test_hmdb51_name_with_a_space_keeps_it(hmdb):
    index = datasets.read_hmdb51(*hmdb, 2)
    assert "walk/Old School_walk_f_nm_np1_ri_med_2" in [v.media_id for v in index.subset("train")]


def test_hmdb51_missing_videos(hmdb):
    root, splits = hmdb
    (root / "punch" / "American_History_X_(1998)_punch_h_nm_np1_fr_bad_3.avi").unlink()
    listed = "punch/American_History_X_(1998)_punch_h_nm_np1_fr_bad_3.avi"
    expected = os.path.join(os.path.abspath(root), *listed.split("/"))
    message = r"1 of the 6 videos named by .*_test_split1\.txt are absent .*" + re.escape(expected)
    with pytest.raises(DatasetError, match=message):
        datasets.read_hmdb51(root, splits, 1)
    index = datasets.read_hmdb51(root, splits, 1, allow_missing=True)
    assert index.missing == [(listed, expected)]
    assert len(index.videos) == 5


def test_hmdb51_errors_name_the_split_files(hmdb, tmp_path):
    root, splits = hmdb
    for name in HMDB:
        (splits / f"{name}_test_split3.txt").unlink()
    message = r"no HMDB51 split files for split 3 in .*<class>_test_split3\.txt"
    with pytest.raises(DatasetError, match=message):
        datasets.read_hmdb51(root, splits, 3)
    with pytest.raises(DatasetError, match=r"splits_dir .*not found: .*absent does not exist"):
        datasets.read_hmdb51(root, tmp_path / "absent", 1)
    with pytest.raises(DatasetError, match=r"HMDB51 video_root not found"):
        datasets.read_hmdb51(tmp_path / "absent", splits, 1)


@pytest.mark.parametrize(
    "line",
    ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 3"],
)
def test_hmdb51_reports_an_unparseable_line(hmdb, line):
    root, splits = hmdb
    path = splits / "brush_hair_test_split1.txt"
    path.write_text(f"Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 2 \n{line}\n")
    message = (
        rf"brush_hair_test_split1\.txt, line 2: cannot parse {re.escape(repr(line))}; "
        r"expected .*tag 0 \(unused\), 1 \(train\) or 2 \(test\)"
    )
    with pytest.raises(DatasetError, match=message):
        datasets.read_hmdb51(root, splits, 1)


# ---------------------------------------------------------------------------------------------
# Kinetics-400: quoted labels with commas and spaces, is_cc, ids with "-" and "_", one missing.

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split,is_cc"


@pytest.fixture
def kinetics(tmp_path):
    root, annotations = tmp_path / "kinetics400", tmp_path / "annotations"
    annotations.mkdir()
    (annotations / "train.csv").write_text(
        f"{KINETICS_HEADER}\n"
        '"passing American football (in game)",-Ab_cD3fGh1,14,24,train,0\n'
        '"dancing, salsa",__x_Y-9_zz0,5,15,train,1\n'
        "zumba,QwErTy12345,0,10,train,0\n"
        "zumba,MiSsInG0001,30,40,train,0\n"
    )
    (annotations / "validate.csv").write_text(
        f'{KINETICS_HEADER}\n"dancing, salsa",-_-_-_-_-_-,120,130,validate,0\n'
    )
    (annotations / "test.csv").write_text(
        f"{KINETICS_HEADER}\n,t3St_ID-001,1,11,test,0\nzumba,t3St_ID-002,2,12,test,0\n"
    )
    touch(root / "train" / "passing American football (in game)" / "-Ab_cD3fGh1_000014_000024.mp4")
    touch(root / "train" / "dancing, salsa" / "__x_Y-9_zz0_000005_000015.mp4")
    touch(root / "QwErTy12345_000000_000010.mkv")  # flat, and not .mp4
    touch(root / "val" / "dancing, salsa" / "-_-_-_-_-_-_000120_000130.mp4")
    touch(root / "val" / "dancing, salsa" / "-_-_-_-_-_-_000120_000130.avi")  # .mp4 wins
    touch(root / "test" / "t3St_ID-001_000001_000011.mp4")
    touch(root / "test" / "t3St_ID-002_000002_000012.webm")
    return root, annotations


KINETICS_CLASSES = ["dancing, salsa", "passing American football (in game)", "zumba"]


def test_kinetics400_reads_train_and_val_with_quoted_labels(kinetics):
    root, annotations = kinetics
    index = datasets.read_kinetics400(root, annotations)
    abs_root = os.path.abspath(root)
    assert index.name == "kinetics400"
    assert index.classes == KINETICS_CLASSES
    assert [(v.subset, v.media_id, v.label, v.label_name) for v in index.videos] == [
        ("train", "-Ab_cD3fGh1_000014_000024", 1, "passing American football (in game)"),
        ("train", "QwErTy12345_000000_000010", 2, "zumba"),
        ("train", "__x_Y-9_zz0_000005_000015", 0, "dancing, salsa"),
        ("val", "-_-_-_-_-_-_000120_000130", 0, "dancing, salsa"),
    ]
    assert index.videos[0].path == os.path.join(
        abs_root, "train", "passing American football (in game)", "-Ab_cD3fGh1_000014_000024.mp4"
    )
    assert index.videos[1].path == os.path.join(abs_root, "QwErTy12345_000000_000010.mkv")
    assert index.videos[3].path.endswith("-_-_-_-_-_-_000120_000130.mp4")
    looked_at = os.path.join(abs_root, "**", "MiSsInG0001_000030_000040.*")
    assert index.missing == [("MiSsInG0001_000030_000040", looked_at)]
    assert index.counts() == {
        "train": {"dancing, salsa": 1, "passing American football (in game)": 1, "zumba": 1},
        "val": {"dancing, salsa": 1},
    }


def test_kinetics400_test_rows_without_label_are_unlabeled(kinetics):
    index = datasets.read_kinetics400(*kinetics, subsets=("test",))
    assert index.classes == KINETICS_CLASSES  # every row read names the classes, kept or not
    assert [(v.media_id, v.label, v.label_name, v.subset) for v in index.videos] == [
        ("t3St_ID-001_000001_000011", -1, "", "test"),
        ("t3St_ID-002_000002_000012", 2, "zumba", "test"),
    ]
    assert index.videos[1].path.endswith(".webm")


def test_kinetics400_reads_one_csv_and_the_original_test_csv_without_label(kinetics, tmp_path):
    root, annotations = kinetics
    index = datasets.read_kinetics400(root, annotations / "validate.csv", subsets="val")
    assert [v.media_id for v in index.videos] == ["-_-_-_-_-_-_000120_000130"]
    assert index.classes == ["dancing, salsa"]
    original_test = tmp_path / "kinetics_400_test.csv"
    original_test.write_text("youtube_id,time_start,time_end,split\nt3St_ID-001,1,11,test\n")
    index = datasets.read_kinetics400(root, original_test, subsets=["test"])
    assert index.classes == [] and [v.label for v in index.videos] == [-1]


def test_kinetics400_youtube_ids_are_case_sensitive(kinetics):
    root, annotations = kinetics
    (root / "QwErTy12345_000000_000010.mkv").rename(root / "qwerty12345_000000_000010.mkv")
    index = datasets.read_kinetics400(root, annotations)
    missing = [media_id for media_id, _ in index.missing]
    assert missing == ["QwErTy12345_000000_000010", "MiSsInG0001_000030_000040"]


def test_kinetics400_with_every_clip_missing_is_an_error(kinetics, tmp_path):
    _, annotations = kinetics
    empty = tmp_path / "empty"
    empty.mkdir()
    message = (
        rf"no videos found under {re.escape(str(empty))} for the 5 clips "
        r".*e\.g\. -Ab_cD3fGh1_000014_000024\.mp4.*\.mp4, \.avi, \.mkv, \.webm, \.mov"
    )
    with pytest.raises(DatasetError, match=message):
        datasets.read_kinetics400(empty, annotations)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "label,youtube_id,time_start,split\nzumba,abc,1,train\n",
            r"train\.csv: the header 'label,youtube_id,time_start,split' lacks time_end; "
            r"expected label,youtube_id",
        ),
        (
            f"{KINETICS_HEADER}\nzumba,abc,1,11,training,0\n",
            r"train\.csv, line 2: split 'training' is not one of train, val, validate, test",
        ),
        (
            f"{KINETICS_HEADER}\nzumba,abc,1,11,train,0\nzumba,abc,1.5,11,train,0\n",
            r"train\.csv, line 3: time_start '1\.5' is not a whole number of seconds",
        ),
        (
            f"{KINETICS_HEADER}\n,abc,1,11,train,0\n",
            r"train\.csv, line 2: a train row needs a label; only test rows may have none",
        ),
        (
            f"{KINETICS_HEADER}\nzumba,abc,1\n",
            r"train\.csv, line 2: the row has a different number of fields than the header",
        ),
        (f"{KINETICS_HEADER}\nzumba, ,1,11,train,0\n", r"train\.csv, line 2: empty youtube_id"),
    ],
)
def test_kinetics400_reports_bad_csv_rows(kinetics, content, message):
    root, annotations = kinetics
    (annotations / "train.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        datasets.read_kinetics400(root, annotations)


def test_kinetics400_argument_errors(kinetics, tmp_path):
    root, annotations = kinetics
    message = r"annotations .*not found: .*nowhere\.csv does not exist"
    with pytest.raises(DatasetError, match=message):
        datasets.read_kinetics400(root, tmp_path / "nowhere.csv")
    (tmp_path / "no_csv").mkdir()
    message = r"no \.csv files in .*no_csv; expected e\.g\. train\.csv"
    with pytest.raises(DatasetError, match=message):
        datasets.read_kinetics400(root, tmp_path / "no_csv")
    message = r"subsets \('train', 'validation'\): each must be one of train, val, test"
    with pytest.raises(DatasetError, match=message):
        datasets.read_kinetics400(root, annotations, subsets=("train", "validation"))
    with pytest.raises(DatasetError, match=r"no rows with split in val in .*train\.csv"):
        datasets.read_kinetics400(root, annotations / "train.csv", subsets=("val",))
    # "holdout" is a subset of prepared data, never a Kinetics annotation split.
    with pytest.raises(
        DatasetError, match=r"subsets \('holdout',\): each must be one of train, val, test$"
    ):
        datasets.read_kinetics400(root, annotations, subsets="holdout")


# ---------------------------------------------------------------------------------------------
# Unlabeled folder


def test_folder_reads_every_video_extension_in_any_case(tmp_path):
    root = tmp_path / "clips"
    for name in ["a.MP4", "sub/b.avi", "sub/deeper/c.Mkv", "d.webm", "e.MOV"]:
        touch(root / name)
    for ignored in ["notes.txt", "sub/frames.jpg", "._a.mp4", ".cache/x.mp4", "mp4"]:
        touch(root / ignored)
    index = datasets.read_folder(root)
    assert (index.name, index.classes, index.missing) == ("folder", [], [])
    assert [v.media_id for v in index.videos] == ["a", "d", "e", "sub/b", "sub/deeper/c"]
    assert index.videos[4].path == os.path.join(os.path.abspath(root), "sub", "deeper", "c.Mkv")
    assert {(v.label, v.label_name, v.subset) for v in index.videos} == {(-1, "", "train")}
    assert index.counts() == {"train": {"": 5}}
    assert index.subset("test") == []


def test_folder_errors(tmp_path):
    root = tmp_path / "clips"
    touch(root / "readme.txt")
    message = rf"no videos found under {re.escape(str(root))}.*\.mp4, \.avi, \.mkv, \.webm, \.mov"
    with pytest.raises(DatasetError, match=message):
        datasets.read_folder(root)
    touch(root / "x" / "a.mp4")
    touch(root / "x" / "a.AVI")
    with pytest.raises(DatasetError, match=r"a\.AVI and .*a\.mp4 would share the media id 'x/a'"):
        datasets.read_folder(root)
    with pytest.raises(DatasetError, match=r"video_root not found"):
        datasets.read_folder(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------
# Dispatch and the index


def test_read_dataset_dispatches_by_name(ucf, hmdb, kinetics):
    assert datasets.read_dataset("UCF101", *ucf, split=2) == datasets.read_ucf101(*ucf, 2)
    assert datasets.read_dataset("hmdb51", *hmdb, split=3) == datasets.read_hmdb51(*hmdb, 3)
    assert datasets.read_dataset("kinetics400", *kinetics) == datasets.read_kinetics400(*kinetics)
    assert datasets.read_dataset("Folder", ucf[0]) == datasets.read_folder(ucf[0])


def test_read_dataset_errors(ucf):
    message = r"unknown dataset 'ucf-101'; valid names: ucf101, hmdb51, kinetics400, folder"
    with pytest.raises(DatasetError, match=message):
        datasets.read_dataset("ucf-101", ucf[0], ucf[1])
    message = r"dataset 'hmdb51' needs splits: the testTrainMulti_7030_splits/ folder"
    with pytest.raises(DatasetError, match=message):
        datasets.read_dataset("hmdb51", ucf[0])
    with pytest.raises(DatasetError, match=r"dataset 'folder' takes no splits"):
        datasets.read_dataset("folder", ucf[0], ucf[1])
    with pytest.raises(DatasetError, match=r"split must be one of 1, 2, 3; got 7"):
        datasets.read_dataset("ucf101", *ucf, split=7)


def test_index_subset_rejects_unknown_names(ucf):
    index = datasets.read_ucf101(*ucf, 1)
    message = r"unknown subset 'validation'; valid subsets: train, val, test, holdout$"
    with pytest.raises(DatasetError, match=message):
        index.subset("validation")
    assert index.subset("val") == []
    assert index.subset("holdout") == []  # made by the preparation, never by a reader
    assert datasets.HOLDOUT == "holdout" and datasets.SUBSETS == ("train", "val", "test", "holdout")
