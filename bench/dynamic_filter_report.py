"""The DynamicFilter section of docs/BENCHMARKS.md, from bench/dynamic_filter.py's JSON.

Not part of bench/dynamic_filter.py: that script imports TensorFlow, and the report renders
from the JSONs without it. It imports only TensorFlow-free modules
(tests/test_bench_report.py checks).
"""

from bench.report_common import percent
from dynamonet_tf.markdown import markdown_table


def render_dynamic_filter(data, results):
    """``(lines, says)`` of the section: the Markdown above the sentences, and the sentences
    under "What the numbers say". ``results`` holds every bench's JSON (or None), for
    comparisons across benches."""
    config, rows = data["config"], data["results"]
    fastest = min(rows, key=lambda row: row["median_ms"])
    slowest = max(rows, key=lambda row: row["median_ms"])
    lines = [
        f"B={config['batch']}, T={config['frames']}, {config['size']}x{config['size']}x3, "
        f"k={config['kernel']}, median of {config['repeats']} calls.",
        "",
    ]
    lines.append(
        markdown_table(
            ["implementation", "median ms", "ratio to fastest"],
            [
                [
                    r["implementation"],
                    f"{r['median_ms']:.1f}",
                    f"{r['median_ms'] / fastest['median_ms']:.2f}",
                ]
                for r in rows
            ],
            "lrr",
        )
    )
    per_clip = fastest["median_ms"] / config["batch"]
    says = (
        f"{fastest['implementation']} is the fastest: {fastest['median_ms']:.1f} ms for "
        f"{config['batch']} clips ({per_clip:.1f} ms per clip); {slowest['implementation']} "
        f"takes {slowest['median_ms'] / fastest['median_ms']:.1f}x as long."
    )
    training = results.get("training")
    if training and (training["config"]["frames"], training["config"]["size"]) == (
        config["frames"],
        config["size"],
    ):
        joint = [r for r in training["results"] if r["model"] == "joint"]
        if joint:
            step = min(joint, key=lambda r: r["step_seconds"])
            step_per_clip = 1000 * step["step_seconds"] / training["config"]["batch"]
            says += (
                f" Per clip that is {percent(per_clip / step_per_clip)} of the fastest joint "
                f"training step measured by training.py ({step['backbone']}: "
                f"{step_per_clip:.0f} ms per clip)."
            )
    per_pixel = {
        r["implementation"]: r["median_ms"]
        for r in rows
        if r["implementation"].endswith("(per-pixel)")
    }
    before = per_pixel.get("extract_patches (per-pixel)")
    after = per_pixel.get("conv_patches (per-pixel)")
    if before and after:
        says += (
            f" Per-pixel filters (the layer's default, conv_patches): {after:.1f} ms against "
            f"{before:.1f} ms with extract_patches, {before / after:.1f}x faster, and "
            f"{after / fastest['median_ms']:.1f}x the fastest global filtering."
        )
    return lines, says
