"""Plain-text tables for the commands' printed results (evaluate.py's accuracy, the frame
prediction scores): every column as wide as its widest cell or header, columns at least two
spaces apart whatever the widths, so that long headers never run together.

Imports nothing, like :mod:`dynamonet_tf.markdown` (whose tables are for the docs pages).
"""

GAP = "  "  # between columns, at least


def text_table(header, rows, align=None, indent=2):
    """The table's lines, joined by newlines, without a final newline.

    ``header`` and each row hold one cell per column (written with ``str``); ``align`` one
    letter per column, "l" (left) or "r" (right, for numbers), default: the first column
    left and the others right. Lines are stripped of trailing spaces.
    """
    header = [str(cell) for cell in header]
    rows = [[str(cell) for cell in row] for row in rows]
    align = "l" + "r" * (len(header) - 1) if align is None else align
    if len(align) != len(header) or not set(align) <= {"l", "r"}:
        raise ValueError(f"align {align!r} must give l or r for each of the {len(header)} columns")
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row} has {len(row)} cells for {len(header)} columns")
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells):
        text = GAP.join(
            cell.ljust(width) if letter == "l" else cell.rjust(width)
            for cell, width, letter in zip(cells, widths, align)
        )
        return (" " * indent + text).rstrip()

    return "\n".join(line(cells) for cells in [header, *rows])
