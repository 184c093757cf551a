"""The Markdown tables of the generated pages, docs/BENCHMARKS.md and docs/RESULTS.md.

One helper, so that both pages draw their tables the same way. It imports nothing, not even
the rest of dynamonet_tf, so that the pages render in well under a second without loading
TensorFlow.
"""

# The rule under the header cell of a left- ("l") or right-aligned ("r") column.
ALIGNMENT_RULES = {"l": "---", "r": "---:"}


def markdown_table(header, rows, align=None):
    """A GitHub Markdown table: its lines joined by newlines, without a final newline.

    ``align`` holds one letter per column, "l" or "r" (right, for numbers); None leaves every
    column at the default (left). Cells are written with ``str`` and not escaped: a cell
    containing "|" would split its column.
    """
    align = "l" * len(header) if align is None else align
    if len(align) != len(header) or not set(align) <= set(ALIGNMENT_RULES):
        raise ValueError(
            f"align {align!r} must give one of {'/'.join(ALIGNMENT_RULES)} "
            f"for each of the {len(header)} columns"
        )
    lines = [
        "| " + " | ".join(str(cell) for cell in header) + " |",
        "|" + "|".join(ALIGNMENT_RULES[letter] for letter in align) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
