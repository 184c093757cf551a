"""Video decoding with PyAV (FFmpeg bundled in its wheels; tensorflow-io cannot load here)."""

import av
import numpy as np

# A container that declares this many frames but yields fewer than this share of them is
# truncated, not merely imprecise about its length (variable frame rates make the declared
# count approximate).
_TRUNCATION_SHARE = 0.5


class VideoDecodeError(Exception):
    """A video that cannot be decoded; the message says why."""


def resized_size(height, width, short_side):
    """(height, width) with the shorter side ``short_side``, aspect ratio kept."""
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def decode_video(path, short_side=None, max_frames=None):
    """Decodes every frame of ``path`` as RGB.

    Args:
        short_side: resize (area interpolation, in FFmpeg) so the shorter side is this many
            pixels; ``None`` keeps the decoded size.
        max_frames: stop after this many frames.

    Returns:
        ``(frames, fps)``: uint8 ``(time, height, width, 3)`` and the stream's average frame
        rate (0.0 when the container does not say).

    Raises:
        VideoDecodeError: unreadable, empty, without a video stream, or truncated.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError("no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else 0.0
            declared = stream.frames
            frames = []
            for frame in container.decode(stream):
                if short_side is None:
                    frames.append(frame.to_ndarray(format="rgb24"))
                else:
                    height, width = resized_size(frame.height, frame.width, short_side)
                    frames.append(
                        frame.reformat(
                            width=width, height=height, format="rgb24", interpolation="AREA"
                        ).to_ndarray()
                    )
                if max_frames and len(frames) >= max_frames:
                    break
    except VideoDecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(f"{type(error).__name__}: {error}") from error
    if not frames:
        raise VideoDecodeError("no frames could be decoded")
    if not max_frames and declared and len(frames) < _TRUNCATION_SHARE * declared:
        raise VideoDecodeError(
            f"truncated: decoded {len(frames)} of the {declared} frames the container declares"
        )
    return np.stack(frames), fps
