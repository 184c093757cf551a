"""The backbones section of docs/BENCHMARKS.md, from bench/backbones.py's JSON.

Not part of bench/backbones.py: that script imports TensorFlow, and the report renders from
the JSONs without it. It imports only TensorFlow-free modules (tests/test_bench_report.py
checks).
"""

from bench.report_common import spread, unsteady
from dynamonet_tf.markdown import markdown_table


def render_backbones(data, results):
    """``(lines, says)`` of the section: the Markdown above the sentences, and the sentences
    under "What the numbers say". ``results`` holds every bench's JSON (or None), for
    comparisons across benches."""
    config, rows = data["config"], data["results"]
    timed = not config.get("skip_timing")
    compared = timed and any("pytorch_step_seconds" in r for r in rows)
    heading = f"{config['frames']}x{config['size']}x{config['size']}x3 clips"
    if timed:
        heading += (
            f", batch {config['batch']}, median of {config['rounds'] * config['steps']} SGD steps "
            f"per variant (one step of each in turn), utilisation against "
            f"{config['peak_gflops']:g} GFLOP/s; GFLOP/s count 3x the forward FLOPs."
        )
    header = ["backbone", "trainable params (M)", "forward GFLOPs per clip"]
    align = "lrr"
    if timed:
        header += ["grouped conv", "step s", "achieved GFLOP/s", "utilisation"]
        align += "lrrr"
    if compared:
        header += ["PyTorch step s", "ours / PyTorch"]
        align += "rr"
    body = []
    for r in rows:
        row = [
            r["backbone"],
            f"{r['trainable_parameters'] / 1e6:.2f}",
            f"{r['forward_gflops_per_clip']:.2f}",
        ]
        if timed:
            row += [
                r.get("grouped_conv_implementation") or "-",
                f"{r['step_seconds']:.2f}",
                f"{r['achieved_gflops_per_second']:.1f}",
                f"{100 * r['utilisation']:.0f}%",
            ]
        if compared:
            if "pytorch_step_seconds" in r:
                row += [f"{r['pytorch_step_seconds']:.2f}", f"{r['ratio_to_pytorch']:.2f}x"]
            else:
                row += ["", ""]
        body.append(row)
    lines = [heading, "", markdown_table(header, body, align)]
    if not timed:
        return lines, "Parameters and FLOPs only: no step was timed."
    sentences = []
    for name in dict.fromkeys(r["backbone"] for r in rows):
        variants = {r.get("grouped_conv_implementation"): r for r in rows if r["backbone"] == name}
        default = variants.get("auto") or variants.get(None) or next(iter(variants.values()))
        sentence = f"{name}: {default['step_seconds']:.2f} s per step"
        if "ratio_to_pytorch" in default:
            sentence += (
                f", {default['ratio_to_pytorch']:.2f}x PyTorch's "
                f"{default['pytorch_step_seconds']:.2f} s"
            )
        sentence += f", {100 * default['utilisation']:.0f}% of the peak"
        if "native" in variants and default is not variants["native"]:
            native = variants["native"]
            sentence += (
                f"; Keras's native grouped Conv3D would take {native['step_seconds']:.2f} s "
                f"({native['step_seconds'] / default['step_seconds']:.1f}x)"
            )
        if default.get("pytorch_trainable_parameters") not in (
            None,
            default["trainable_parameters"],
        ):
            sentence += (
                f" (PyTorch's build has {default['pytorch_trainable_parameters']:,} parameters, "
                f"ours {default['trainable_parameters']:,}: not the same architecture)"
            )
        sentence += unsteady("our", default.get("step_seconds_all", []))
        noisy = spread(default.get("pytorch_step_seconds_all", []))
        if noisy > 2:
            sentence += (
                f"; PyTorch's slowest step took {noisy:.1f}x its fastest, so the machine was "
                "loaded and that ratio is unreliable"
            )
        else:
            sentence += unsteady("PyTorch's", default.get("pytorch_step_seconds_all", []))
        sentences.append(sentence + ".")
    return lines, " ".join(sentences)
