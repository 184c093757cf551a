"""The input-pipeline section of docs/BENCHMARKS.md, from bench/pipeline.py's JSON (and
training.json's step times, which the pipelines must keep up with).

Not part of bench/pipeline.py: that script imports TensorFlow, and the report renders from
the JSONs without it. It imports only TensorFlow-free modules (tests/test_bench_report.py
checks).
"""

from dynamonet_tf.markdown import markdown_table


def render_pipeline(data, results):
    """``(lines, says)`` of the section: the Markdown above the sentences, and the sentences
    under "What the numbers say". ``results`` holds every bench's JSON (or None), for
    comparisons across benches."""
    config, rows = data["config"], data["results"]
    lines = [
        f"{config['videos']} synthetic videos x {config['video_frames']} frames, "
        f"{config['height']}x{config['width']} JPEG "
        f"(mean {config['mean_jpeg_bytes'] / 1024:.1f} KiB), {config['shards']} shards; "
        f"clips of {config['frames']}x{config['size']}x{config['size']}x3; "
        "the pipeline ran alone on the cores.",
        "",
    ]
    lines.append(
        markdown_table(
            ["pipeline", "batch", "clips/s", "decoded frames/s", "ms per batch"],
            [
                [
                    r["pipeline"],
                    r["batch"],
                    f"{r['clips_per_second']:.1f}",
                    f"{r['decoded_frames_per_second']:.0f}",
                    f"{r['ms_per_batch']:.0f}",
                ]
                for r in rows
            ],
            "lrrrr",
        )
    )
    train = [r for r in rows if r["pipeline"].startswith("train")]
    training = results.get("training")
    if not training or not train:
        return lines, (
            "The training step's consumption is not measured (no training.json): compare the "
            "clips/s above with batch / step time."
        )
    supply = min(train, key=lambda r: r["clips_per_second"])
    lines += [
        "",
        "Against the training steps of training.json "
        "(clips/s a step consumes = batch / step time):",
        "",
    ]
    body, short = [], []
    for step in training["results"]:
        headroom = supply["clips_per_second"] / step["clips_per_second"]
        body.append(
            [
                f"{step['backbone']} {step['model']}",
                f"{step['clips_per_second']:.2f}",
                f"{supply['clips_per_second']:.1f}",
                f"{headroom:.1f}x",
            ]
        )
        if headroom < 1:
            short.append(f"{step['backbone']} {step['model']}")
    lines.append(
        markdown_table(
            [
                "training step",
                "step consumes clips/s",
                "slower train pipeline clips/s",
                "pipeline / step",
            ],
            body,
            "lrrr",
        )
    )
    hungriest = max(training["results"], key=lambda r: r["clips_per_second"])
    same_shape = (training["config"]["frames"], training["config"]["size"]) == (
        config["frames"],
        config["size"],
    )
    says = (
        f"The slower training pipeline ({supply['pipeline']}) delivers "
        f"{supply['clips_per_second']:.1f} clips/s; the hungriest step "
        f"({hungriest['backbone']} {hungriest['model']}) consumes "
        f"{hungriest['clips_per_second']:.2f} clips/s, so the pipeline supplies "
        f"{supply['clips_per_second'] / hungriest['clips_per_second']:.1f}x that."
    )
    if short:
        says += (
            f" The pipeline is slower than these steps: {', '.join(short)}; it would starve them."
        )
    else:
        says += (
            " It keeps up with every step measured, though in training it shares the cores "
            "with the step."
        )
    if not same_shape:
        says += " (The two benches used different clip shapes.)"
    return lines, says
