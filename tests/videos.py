"""Real video files for tests, written with PyAV."""

import av
import numpy as np


def frame_pattern(index, height, width):
    """A frame that identifies its index after lossy coding: brightness 8 * index + gradient."""
    y = np.linspace(0, 40, height)[:, None, None]
    x = np.linspace(0, 40, width)[None, :, None]
    base = np.clip(8 * index + y + x, 0, 255)
    return np.broadcast_to(base, (height, width, 3)).astype(np.uint8)


def write_video(path, num_frames, height=96, width=128, codec="mpeg4", fps=25):
    """Writes ``frame_pattern`` frames 0..num_frames-1; returns them, (time, height, width, 3)."""
    frames = np.stack([frame_pattern(t, height, width) for t in range(num_frames)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames
