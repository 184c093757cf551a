"""The Model Garden section of docs/BENCHMARKS.md, from bench/model_garden.py's JSON.

Not part of bench/model_garden.py: that script imports TensorFlow and the Model Garden, and
the report renders from the JSONs without it. It imports only TensorFlow-free modules
(tests/test_bench_report.py checks).
"""

import json

from bench.report_common import unsteady
from dynamonet_tf.markdown import markdown_table


def render_model_garden(data, results):
    """``(lines, says)`` of the section: the Markdown above the sentences, and the sentences
    under "What the numbers say". ``results`` holds every bench's JSON (or None), for
    comparisons across benches."""
    config, models, rows = data["config"], data["models"], data["results"]
    lines = [
        f"{config['frames']}x{config['size']}x{config['size']}x3 clips; GAP + Dense(400), sparse "
        f"softmax cross-entropy, plain SGD; median of {config['rounds']} rounds x "
        f"{config['steps']} steps per model, the order alternating between rounds; GFLOP/s "
        f"count 3x the forward FLOPs, utilisation against {config['peak_gflops']:g} GFLOP/s.",
        "",
    ]
    names = {"ours": "ours (Hara's 3D ResNet-50)", "model_garden": "Model Garden ResNet3D-50"}
    lines.append(
        markdown_table(
            [
                "model",
                "built by",
                "backbone params (M)",
                "forward GFLOPs per clip",
                "output TxHxWxC",
            ],
            [
                [
                    names[name],
                    models[name]["builder"],
                    f"{models[name]['backbone_trainable_parameters'] / 1e6:.2f}",
                    f"{models[name]['forward_gflops_per_clip']:.2f}",
                    "x".join(map(str, models[name]["output_shape"])),
                ]
                for name in ("ours", "model_garden")
            ],
            "llrrl",
        )
    )
    lines += [
        "",
        markdown_table(
            [
                "batch",
                "model",
                "step s",
                "clips/s",
                "achieved GFLOP/s",
                "utilisation",
                "ours / Model Garden",
            ],
            [
                [
                    r["batch"],
                    names[r["model"]],
                    f"{r['step_seconds']:.3f}",
                    f"{r['clips_per_second']:.2f}",
                    f"{r['achieved_gflops_per_second']:.1f}",
                    f"{100 * r['utilisation']:.0f}%",
                    f"{r['ratio_to_model_garden']:.2f}x" if "ratio_to_model_garden" in r else "",
                ]
                for r in rows
            ],
            "rlrrrrr",
        ),
    ]
    options = models["model_garden"].get("options", {})
    lines += [
        "",
        "Model Garden options: `" + json.dumps(options) + "`. Differences its API leaves:",
        "",
    ]
    lines += [f"- {difference}" for difference in data.get("differences", [])]
    flops_ratio = (
        models["ours"]["forward_gflops_per_clip"]
        / models["model_garden"]["forward_gflops_per_clip"]
    )
    params_ratio = (
        models["ours"]["backbone_trainable_parameters"]
        / models["model_garden"]["backbone_trainable_parameters"]
    )
    sentences = [
        f"Ours has {params_ratio:.2f}x the Model Garden's parameters and {flops_ratio:.2f}x its "
        "forward FLOPs (its bottleneck is factorised)."
    ]
    by_batch = {}
    for r in rows:
        by_batch.setdefault(r["batch"], {})[r["model"]] = r
    for batch, pair in by_batch.items():
        if len(pair) < 2:
            continue
        ours, theirs = pair["ours"], pair["model_garden"]
        ratio = ours["step_seconds"] / theirs["step_seconds"]
        sentences.append(
            f"Batch {batch}: our step takes {ratio:.2f}x the Model Garden's time "
            f"({ours['step_seconds']:.3f} s against {theirs['step_seconds']:.3f} s), "
            f"i.e. {ratio / flops_ratio:.2f}x its time per FLOP "
            f"({ours['achieved_gflops_per_second']:.1f} against "
            f"{theirs['achieved_gflops_per_second']:.1f} GFLOP/s achieved)"
            + unsteady("our", ours.get("step_seconds_all", []))
            + unsteady("the Model Garden's", theirs.get("step_seconds_all", []))
            + "."
        )
    if "ours" in models and models["ours"].get("graph_forward_gflops_per_clip") is not None:
        same = (
            abs(
                models["ours"]["graph_forward_gflops_per_clip"]
                - models["ours"]["forward_gflops_per_clip"]
            )
            < 1e-9
        )
        sentences.append(
            "The graph count applied to ours gives the same FLOPs as dynamonet_tf.models.flops."
            if same
            else (
                "The graph count applied to ours gives "
                f"{models['ours']['graph_forward_gflops_per_clip']:.2f} GFLOPs against "
                f"dynamonet_tf.models.flops's {models['ours']['forward_gflops_per_clip']:.2f}."
            )
        )
    return lines, " ".join(sentences)
