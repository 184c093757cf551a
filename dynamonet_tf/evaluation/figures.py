"""The confusion matrix of an evaluation drawn as an image (``confusion.png``)."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Colour of a row fraction of 1 (matplotlib's "Blues" at its darkest); 0 is white.
FULL_CELL = np.array([8, 48, 107], np.float64)


def confusion_image(confusion, names):
    """The confusion matrix as an RGB image: rows true classes, columns predicted classes,
    each cell shaded by its share of the row's videos (white 0 to dark blue 1).

    Cells are sized so the matrix is at most about 800 pixels wide; when they are at least
    12 pixels, rows are labelled with their class names, columns with class indices, and the
    diagonal is outlined.
    """
    counts = np.asarray(confusion, np.float64)
    num_classes = len(counts)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    cell = int(np.clip(800 // num_classes, 1, 40))
    colours = 255 - shares[..., None] * (255 - FULL_CELL)
    matrix = np.repeat(np.repeat(colours.round().astype(np.uint8), cell, axis=0), cell, axis=1)
    if cell < 12:
        return Image.fromarray(matrix)
    font = ImageFont.load_default()
    labels = [f"{i} {name}" for i, name in enumerate(names)]
    left = 8 + max(int(font.getlength(label)) for label in labels)
    top = 36
    image = Image.new("RGB", (left + matrix.shape[1] + 4, top + matrix.shape[0] + 4), "white")
    image.paste(Image.fromarray(matrix), (left, top))
    draw = ImageDraw.Draw(image)
    draw.text((left, 2), "true (rows) vs predicted (columns)", fill="black", font=font)
    for i, label in enumerate(labels):
        # The diagonal (correct videos) outlined, so that an empty one still shows.
        corner = (left + i * cell, top + i * cell)
        draw.rectangle(
            [corner, (corner[0] + cell - 1, corner[1] + cell - 1)], outline=(160, 160, 160)
        )
        draw.text((4, top + i * cell + cell // 2), label, fill="black", font=font, anchor="lm")
        draw.text(
            (left + i * cell + cell // 2, top - 2), str(i), fill="black", font=font, anchor="mb"
        )
    return image
