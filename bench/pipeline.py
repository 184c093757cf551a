"""Throughput of the training and evaluation input pipelines, in clips per second.

    python -m bench.pipeline [--videos 32 --video-frames 64 --height 128 --width 171]
                             [--frames 16 --size 112 --batch 8]
                             [--warmup 5 --steps 50] [--json PATH]

Writes synthetic videos to TFRecords in a temporary directory (smooth random textures
panning across the frame plus pixel noise, JPEG quality 90, in 4 shards), then times
iterating each pipeline on this machine's CPU:

- train: :func:`train_dataset` (random window of frames + 1, 5-crop, flip), ``--steps``
  batches after ``--warmup`` batches, with and without deterministic element order;
- eval: :func:`eval_dataset` (all non-overlapping clips, centre crop), one full pass after
  a full warm-up pass.

Only the pipeline runs: compare its clips/s with the clips/s a training step consumes
(batch / step time, e.g. from bench/backbones.py). In training the two share the cores.
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.machine import describe, machine, record_end  # noqa: E402
from dynamonet_tf.data.pipelines import eval_dataset, train_dataset  # noqa: E402
from dynamonet_tf.data.schema import encode_video_example  # noqa: E402

NUM_SHARDS = 4


def synthetic_video(rng, num_frames, height, width):
    """JPEG frames of a smooth random texture panning by a random velocity, plus noise."""
    margin = 2 * num_frames
    coarse = rng.random((1, (height + 2 * margin) // 8, (width + 2 * margin) // 8, 3))
    texture = tf.image.resize(coarse, (height + 2 * margin, width + 2 * margin))[0].numpy()
    velocity = rng.integers(-2, 3, size=2)
    frames = []
    for t in range(num_frames):
        y, x = margin + velocity * t
        frame = 255 * texture[y : y + height, x : x + width] + rng.normal(0, 4, (height, width, 3))
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        frames.append(tf.io.encode_jpeg(frame, quality=90).numpy())
    return frames


def write_shards(directory, args):
    """Writes the synthetic videos; returns the shards' glob and the mean JPEG size."""
    rng = np.random.default_rng(0)
    writers = [
        tf.io.TFRecordWriter(os.path.join(directory, f"bench-{shard:02d}.tfrecord"))
        for shard in range(NUM_SHARDS)
    ]
    sizes = []
    for index in range(args.videos):
        frames = synthetic_video(rng, args.video_frames, args.height, args.width)
        sizes += [len(frame) for frame in frames]
        label = index % 10
        example = encode_video_example(frames, label, f"class{label}", f"video{index:03d}")
        writers[index % NUM_SHARDS].write(example)
    for writer in writers:
        writer.close()
    return os.path.join(directory, "bench-*.tfrecord"), float(np.mean(sizes))


def time_batches(dataset, warmup, steps):
    """Seconds to pull ``steps`` batches after ``warmup`` batches, and the clips pulled."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    clips = 0
    start = time.perf_counter()
    for _ in range(steps):
        frames, _ = next(iterator)
        clips += frames.shape[0]
    return time.perf_counter() - start, clips


def time_passes(dataset):
    """Seconds of one full pass after a warm-up pass, and the clips in a pass."""
    for _ in dataset:
        pass
    clips = 0
    start = time.perf_counter()
    for frames, _ in dataset:
        clips += frames.shape[0]
    return time.perf_counter() - start, clips


def result(name, seconds, clips, batches, frames_per_clip, batch):
    return {
        "pipeline": name,
        "batch": batch,
        "clips": clips,
        "seconds": seconds,
        "clips_per_second": clips / seconds,
        "decoded_frames_per_second": clips * frames_per_clip / seconds,
        "ms_per_batch": 1000 * seconds / batches,
    }


def measure(pattern, args):
    results = []
    for deterministic in (False, True):
        dataset = train_dataset(
            pattern,
            num_frames=args.frames,
            crop_size=args.size,
            short_side=args.height,
            batch_size=args.batch,
            seed=0,
            deterministic=deterministic,
        )
        seconds, clips = time_batches(dataset, args.warmup, args.steps)
        name = f"train (deterministic={deterministic})"
        results.append(result(name, seconds, clips, args.steps, args.frames + 1, args.batch))
    dataset = eval_dataset(
        pattern,
        num_frames=args.frames,
        crop_size=args.size,
        short_side=args.height,
        batch_size=args.batch,
    )
    seconds, clips = time_passes(dataset)
    batches = -(-clips // args.batch)
    results.append(result("eval (one pass)", seconds, clips, batches, args.frames, args.batch))
    return results


def print_table(results, args, jpeg_bytes):
    print(
        f"\n{args.videos} synthetic videos x {args.video_frames} frames, "
        f"{args.height}x{args.width} JPEG (mean {jpeg_bytes / 1024:.1f} KiB), "
        f"{NUM_SHARDS} shards; clips of {args.frames}x{args.size}x{args.size}x3\n"
    )
    print("| pipeline | batch | clips/s | decoded frames/s | ms per batch |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['pipeline']} | {row['batch']} | {row['clips_per_second']:.1f} "
            f"| {row['decoded_frames_per_second']:.0f} | {row['ms_per_batch']:.0f} |"
        )
    print(
        "\nThe training step consumes batch / step-time clips/s (bench/backbones.py times "
        "steps): the pipeline keeps up when its clips/s is higher. Here it ran alone; in "
        "training it shares these cores with the step."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--video-frames", type=int, default=64)
    parser.add_argument("--height", type=int, default=128, help="stored short side")
    parser.add_argument("--width", type=int, default=171)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5, help="training batches not timed")
    parser.add_argument("--steps", type=int, default=50, help="training batches timed")
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    args = parser.parse_args()

    info = machine()
    print(describe(info))
    with tempfile.TemporaryDirectory() as directory:
        pattern, jpeg_bytes = write_shards(directory, args)
        results = measure(pattern, args)
    record_end(info)
    print_table(results, args, jpeg_bytes)

    if args.json:
        with open(args.json, "w") as file:
            config = dict(vars(args), shards=NUM_SHARDS, mean_jpeg_bytes=jpeg_bytes)
            json.dump({"machine": info, "config": config, "results": results}, file, indent=2)


if __name__ == "__main__":
    main()
