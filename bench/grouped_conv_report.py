"""The grouped-convolution section of docs/BENCHMARKS.md, from bench/grouped_conv.py's JSON.

Not part of bench/grouped_conv.py: that script imports TensorFlow, and the report renders
from the JSONs without it. It imports only TensorFlow-free modules
(tests/test_bench_report.py checks).
"""

from dynamonet_tf.markdown import markdown_table


def grouped_conv_gflops(result):
    """Forward + both gradients (3x the forward) of one grouped convolution, in GFLOPs."""
    frames, height, width, channels = result["input"]
    stride = result["stride"]
    out = [-(-n // stride) for n in (frames, height, width)]  # "same" / padded "valid"
    groups = 32
    return 3 * 2 * out[0] * out[1] * out[2] * channels * 27 * (channels // groups) / 1e9


def render_grouped_conv(data, results):
    """``(lines, says)`` of the section: the Markdown above the sentences, and the sentences
    under "What the numbers say". ``results`` holds every bench's JSON (or None), for
    comparisons across benches."""
    config, rows = data["config"], data["results"]
    columns = list(rows[0]["median_ms"])
    lines = [
        f"Batch {config['batch']}, {config['dtype']}, 32 groups, forward + backward, median ms "
        f"of {config['rounds']} rounds x {config['repeats']} calls; GFLOP/s count 3x the "
        "forward FLOPs.",
        "",
    ]
    gflop_columns = [c for c in ("auto", "pytorch") if c in columns]
    body = []
    totals = {name: 0.0 for name in columns}
    for r in rows:
        for name in columns:
            totals[name] += r["layers"] * r["median_ms"][name]
        gflops = grouped_conv_gflops(r)
        body.append(
            [r["stage"], "x".join(map(str, r["input"])), r["stride"], r["layers"]]
            + [f"{r['median_ms'][name]:.1f}" for name in columns]
            + [f"{gflops / (r['median_ms'][name] / 1e3):.1f}" for name in gflop_columns]
            + [r.get("auto_picks") or ""]
        )
    layers = sum(r["layers"] for r in rows)
    body.append(
        [f"all {layers} layers (x layers)", "", "", layers]
        + [f"{totals[name]:.0f}" for name in columns]
        + ["" for _ in gflop_columns]
        + [""]
    )
    lines.append(
        markdown_table(
            ["stage", "input TxHxWxC", "stride", "layers"]
            + columns
            + [f"{name} GFLOP/s" for name in gflop_columns]
            + ["auto picks"],
            body,
            "llrr" + "r" * (len(columns) + len(gflop_columns)) + "l",
        )
    )
    sentences = []
    if "native" in totals and "auto" in totals:
        sentences.append(
            f"Over all {layers} grouped convolutions, auto takes {totals['auto']:.0f} ms against "
            f"{totals['native']:.0f} ms for Keras's native grouped Conv3D "
            f"({totals['native'] / totals['auto']:.1f}x faster)."
        )
    if "pytorch" in totals and "auto" in totals:
        sentences.append(
            f"PyTorch takes {totals['pytorch']:.0f} ms: auto is "
            f"{totals['auto'] / totals['pytorch']:.2f}x PyTorch's time."
        )
        slow = [
            f"{r['stage']} ({r['median_ms']['auto'] / r['median_ms']['pytorch']:.1f}x)"
            for r in rows
            if r["median_ms"]["auto"] > 1.5 * r["median_ms"]["pytorch"]
        ]
        if slow:
            sentences.append(
                "Stages where auto takes over 1.5x PyTorch's time: " + ", ".join(slow) + "."
            )
        else:
            sentences.append("No stage takes auto over 1.5x PyTorch's time.")
    if "auto" in columns:
        rates = [
            (grouped_conv_gflops(r) / (r["median_ms"]["auto"] / 1e3), r["stage"]) for r in rows
        ]
        low, high = min(rates), max(rates)
        sentences.append(
            f"auto's rate runs from {low[0]:.1f} GFLOP/s ({low[1]}) to {high[0]:.1f} GFLOP/s "
            f"({high[1]}): {low[1]} takes {high[0] / low[0]:.1f}x longer than its FLOPs "
            f"would at {high[1]}'s rate."
        )
    return lines, " ".join(sentences)
