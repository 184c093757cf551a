import os

import numpy as np
import pytest

from dynamonet_tf.data.video import VideoDecodeError, decode_video, resized_size
from videos import write_video


@pytest.mark.parametrize("name, codec", [("clip.avi", "mpeg4"), ("clip.mp4", "libx264")])
def test_decodes_every_frame(tmp_path, name, codec):
    written = write_video(tmp_path / name, 12, codec=codec)
    frames, fps = decode_video(tmp_path / name)
    assert frames.shape == written.shape and frames.dtype == np.uint8
    assert fps == 25.0
    assert np.abs(frames.astype(int) - written).mean() < 3


def test_resizes_short_side_keeping_aspect(tmp_path):
    write_video(tmp_path / "clip.avi", 5, height=96, width=128)
    frames, _ = decode_video(tmp_path / "clip.avi", short_side=48)
    assert frames.shape == (5, 48, 64, 3)
    assert resized_size(240, 320, 128) == (128, 171)
    assert resized_size(320, 240, 128) == (171, 128)


def test_max_frames(tmp_path):
    write_video(tmp_path / "clip.avi", 10)
    assert decode_video(tmp_path / "clip.avi", max_frames=4)[0].shape[0] == 4


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "Invalid data"),
        (lambda p: p.write_bytes(os.urandom(4096)), "Invalid data"),
        (lambda p: None, "No such file"),
    ],
)
def test_unreadable_videos_raise_with_reason(tmp_path, make, reason):
    path = tmp_path / "bad.avi"
    make(path)
    with pytest.raises(VideoDecodeError, match=reason):
        decode_video(path)


def test_truncated_video_is_refused(tmp_path):
    write_video(tmp_path / "clip.avi", 40, codec="mpeg4")
    data = (tmp_path / "clip.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 4])
    with pytest.raises(VideoDecodeError, match="truncated|Invalid data|no frames"):
        decode_video(tmp_path / "cut.avi")


def test_video_cut_mid_stream_is_refused(tmp_path):
    """An mp4 with its index first (faststart) cut short fails while decoding, not opening."""
    import av

    rng = np.random.default_rng(0)
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for _ in range(60):
            noise = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert len(decode_video(path)[0]) == 60
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoDecodeError):
        decode_video(tmp_path / "cut.mp4")
