"""The training-step section of docs/BENCHMARKS.md, from bench/training.py's JSON.

Not part of bench/training.py: that script imports TensorFlow, and the report renders from
the JSONs without it. It imports only TensorFlow-free modules (tests/test_bench_report.py
checks).
"""

from bench.report_common import percent, unsteady
from dynamonet_tf.markdown import markdown_table

# Above this, a component is said to cost more than a small share of the training step.
LARGE_SHARE = 0.15


def render_training(data, results):
    """``(lines, says)`` of the section: the Markdown above the sentences, and the sentences
    under "What the numbers say". ``results`` holds every bench's JSON (or None), for
    comparisons across benches."""
    config, rows = data["config"], data["results"]
    lines = [
        f"{config['frames']}x{config['size']}x{config['size']}x3 clips, batch {config['batch']}, "
        f"median of {config['steps']} SGD steps (Nesterov momentum) after a warm-up step, "
        f"utilisation against {config['peak_gflops']:g} GFLOP/s; the classifier's and the joint "
        "model's steps alternate.",
        "",
    ]
    lines.append(
        markdown_table(
            [
                "backbone",
                "model",
                "forward GFLOPs per clip",
                "step s",
                "clips/s",
                "achieved GFLOP/s",
                "utilisation",
            ],
            [
                [
                    r["backbone"],
                    r["model"],
                    f"{r['forward_gflops_per_clip']:.2f}",
                    f"{r['step_seconds']:.2f}",
                    f"{r['clips_per_second']:.2f}",
                    f"{r['achieved_gflops_per_second']:.1f}",
                    f"{100 * r['utilisation']:.0f}%",
                ]
                for r in rows
            ],
            "llrrrrr",
        )
    )
    by_model = {(r["backbone"], r["model"]): r for r in rows}
    sentences = []
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        classifier, joint = (
            by_model.get((backbone, "classifier")),
            by_model.get((backbone, "joint")),
        )
        if not (classifier and joint):
            continue
        added = joint["step_seconds"] / classifier["step_seconds"] - 1
        share = 1 - classifier["step_seconds"] / joint["step_seconds"]
        flops = 1 - classifier["forward_gflops_per_clip"] / joint["forward_gflops_per_clip"]
        sentence = (
            f"{backbone}: the frame-prediction branch (with the DMR) adds "
            f"{percent(added, sign=True)} to the classifier's step, i.e. it is "
            f"{percent(share)} of the joint step for {percent(flops)} of its forward FLOPs"
        )
        if share > LARGE_SHARE:
            sentence += f", more than {percent(LARGE_SHARE)} of the step: worth a look"
        elif added < 0:
            sentence += (
                " (a negative cost means the difference between the two models is below this "
                "machine's variation between timings)"
            )
        sentence += unsteady("the classifier's", classifier.get("step_seconds_all", []))
        sentence += unsteady("the joint model's", joint.get("step_seconds_all", []))
        sentences.append(sentence + ".")
    return lines, " ".join(sentences)
