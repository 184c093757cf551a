"""Generated clips for tests: pure camera translation over random textures."""

import numpy as np

DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _texture(rng, size):
    """A smooth random colour texture in [0, 1], ``(size, size, 3)``."""
    noise = rng.random((size // 4 + 2, size // 4 + 2, 3))
    # Bilinear upsampling of coarse noise: structure at a few pixels, so a one-pixel shift
    # changes the frame a lot while a 5x5 filter can still express it exactly.
    coarse = np.linspace(0, noise.shape[0] - 1.001, size)
    i0 = np.floor(coarse).astype(int)
    frac = (coarse - i0)[:, None]
    rows = noise[i0] * (1 - frac[..., None]) + noise[i0 + 1] * frac[..., None]
    cols = rows[:, i0] * (1 - frac.T[..., None]) + rows[:, i0 + 1] * frac.T[..., None]
    return cols.astype(np.float32)


def translation_clips(count, frames, size, seed):
    """Clips of a texture panned one pixel per frame in a random direction per clip.

    Returns ``(count, frames, size, size, 3)`` float32 in [0, 1] and the direction index of
    each clip (into :data:`DIRECTIONS`).
    """
    rng = np.random.default_rng(seed)
    margin = frames + 1
    canvas_size = size + 2 * margin
    clips = np.empty((count, frames, size, size, 3), np.float32)
    labels = rng.integers(len(DIRECTIONS), size=count)
    for n, label in enumerate(labels):
        canvas = _texture(rng, canvas_size)
        dy, dx = DIRECTIONS[label]
        for t in range(frames):
            y, x = margin + dy * t, margin + dx * t
            clips[n, t] = canvas[y : y + size, x : x + size]
    return clips, labels
