"""A PyTorch build of Hara et al.'s 3D ResNet/ResNeXt (CVPR 2018), written for this project.

It is the reference our Keras backbones are checked against: trainable-parameter counts
(tests/test_backbones.py quotes the numbers this file prints) and, in benchmarks, training
step time on the same machine. It needs only ``torch`` (CPU build) and ``numpy``, installed
in a separate environment:
``python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy``.

    /tmp/torchenv/bin/python bench/reference/hara_torch.py

prints the trainable-parameter count of every backbone, without the classifier.

    /tmp/torchenv/bin/python bench/reference/hara_torch.py step stc_resnext101 --steps 5

prints, as one JSON line, the seconds of each SGD training step (backbone + global average
pool + Linear(400), cross-entropy, random clips; after one warm-up step), as
bench/backbones.py times our Keras backbones. With ``--serve`` it stays up and times steps on
request (a line ``N`` on standard input), which bench/backbones.py --torch-python uses to
alternate PyTorch's steps with ours.

    /tmp/torchenv/bin/python bench/reference/hara_torch.py conv '[[8, 28, 28, 128, 1, 32]]'

prints, as one JSON line, the seconds of forward + backward (input and weight gradients) of
one grouped 3x3x3 ``nn.Conv3d`` for each ``[time, height, width, channels, stride, groups]``;
bench/grouped_conv.py --torch-python runs it.

STC variants (``stc_*``) follow our reading of Diba et al. in dynamonet_tf/layers/stc.py, the
same layer for layer (their trainable-parameter counts equal our Keras builds'), so that step
times compare like with like.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
from torch import nn

BLOCKS_PER_STAGE = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}


def conv3d(in_channels, out_channels, kernel_size, stride=1, groups=1):
    return nn.Conv3d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        groups=groups,
        bias=False,
    )


class ShortcutA(nn.Module):
    def __init__(self, channels, stride):
        super().__init__()
        self.channels, self.stride = channels, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        pad = x.new_zeros((x.shape[0], self.channels - x.shape[1]) + x.shape[2:])
        return torch.cat([x, pad], dim=1)


def shortcut(in_channels, out_channels, stride, shortcut_type):
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if shortcut_type == "A":
        return ShortcutA(out_channels, stride)
    return nn.Sequential(conv3d(in_channels, out_channels, 1, stride), nn.BatchNorm3d(out_channels))


class STC(nn.Module):
    """dynamonet_tf.layers.SpatioTemporalChannelCorrelation for ``(batch, C, T, H, W)``."""

    def __init__(self, time, channels, reduction=16):
        super().__init__()
        channel_hidden = max(1, channels // reduction)
        temporal_hidden = max(1, time * channels // reduction)
        self.channel = nn.Sequential(
            nn.Linear(channels, channel_hidden), nn.ReLU(), nn.Linear(channel_hidden, channels)
        )
        self.temporal = nn.Sequential(
            nn.Linear(time * channels, temporal_hidden),
            nn.ReLU(),
            nn.Linear(temporal_hidden, channels),
        )

    def forward(self, x):
        channel_gate = torch.sigmoid(self.channel(x.mean(dim=(2, 3, 4))))
        # (batch, T, C) flattened time-major, as the Keras layer's channels-last reshape.
        temporal = x.mean(dim=(3, 4)).transpose(1, 2).flatten(1)
        temporal_gate = torch.sigmoid(self.temporal(temporal))
        gate = 0.5 * (channel_gate + temporal_gate)
        return x * gate[:, :, None, None, None]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, width, stride, shortcut_type, cardinality=None, stc_time=None):
        super().__init__()
        self.residual = nn.Sequential(
            conv3d(in_channels, width, 3, stride),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            conv3d(width, width, 3),
            nn.BatchNorm3d(width),
            *([STC(stc_time, width)] if stc_time else []),
        )
        self.shortcut = shortcut(in_channels, width, stride, shortcut_type)

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels, width, stride, shortcut_type, cardinality=None, stc_time=None):
        super().__init__()
        inner = width if cardinality is None else cardinality * (width // 32)
        groups = 1 if cardinality is None else cardinality
        out = width * self.expansion
        self.residual = nn.Sequential(
            conv3d(in_channels, inner, 1),
            nn.BatchNorm3d(inner),
            nn.ReLU(inplace=True),
            conv3d(inner, inner, 3, stride, groups=groups),
            nn.BatchNorm3d(inner),
            nn.ReLU(inplace=True),
            conv3d(inner, out, 1),
            nn.BatchNorm3d(out),
            *([STC(stc_time, out)] if stc_time else []),
        )
        self.shortcut = shortcut(in_channels, out, stride, shortcut_type)

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


class ResNeXtBottleneck(Bottleneck):
    expansion = 2


class ResNet3D(nn.Module):
    """Clips ``(batch, 3, time, height, width)`` to the last feature map (no classifier).

    ``stc=True`` adds an STC block to every residual block; it needs the clips' ``frames``.
    """

    def __init__(
        self, depth, resnext=False, shortcut_type=None, cardinality=32, stc=False, frames=16
    ):
        super().__init__()
        if resnext:
            block, widths = ResNeXtBottleneck, (128, 256, 512, 1024)
        else:
            block = Bottleneck if depth >= 50 else BasicBlock
            widths, cardinality = (64, 128, 256, 512), None
        if shortcut_type is None:
            shortcut_type = "B" if (resnext or depth >= 50) else "A"
        layers = [
            nn.Conv3d(3, 64, (7, 7, 7), stride=(1, 2, 2), padding=(3, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, stride=2, padding=1),
        ]
        in_channels = 64
        time = math.ceil(frames / 2)  # after the max-pool
        for stage, (width, blocks) in enumerate(zip(widths, BLOCKS_PER_STAGE[depth])):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                time = math.ceil(time / stride)
                stc_time = time if stc else None
                layers.append(
                    block(in_channels, width, stride, shortcut_type, cardinality, stc_time)
                )
                in_channels = width * block.expansion
        self.features = nn.Sequential(*layers)

    def forward(self, clips):
        return self.features(clips)


def trainable_parameters(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build(name, frames=16):
    """The backbone called ``name`` in dynamonet_tf's registry (e.g. "stc_resnext101")."""
    stc = name.startswith("stc_")
    family = name[4:] if stc else name
    resnext = family.startswith("resnext")
    depth = int(family[len("resnext") if resnext else len("resnet") :])
    return ResNet3D(depth, resnext=resnext, stc=stc, frames=frames)


def step_timer(name, frames, size, batch, classes=400):
    """After one warm-up SGD step, a function timing ``steps`` more; and the parameters."""
    torch.manual_seed(0)
    backbone = build(name, frames)
    with torch.no_grad():
        channels = backbone.eval()(torch.zeros(1, 3, frames, size, size)).shape[1]
    backbone.train()
    model = nn.Sequential(
        backbone, nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(channels, classes)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    clips = torch.rand(batch, 3, frames, size, size)
    labels = torch.randint(0, classes, (batch,))

    def step():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(clips), labels)
        loss.backward()
        optimizer.step()

    step()

    def run(steps):
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return times

    return run, trainable_parameters(backbone)


def time_steps(name, frames, size, batch, steps):
    """Seconds of each of ``steps`` SGD steps after one warm-up step; and the parameters."""
    run, parameters = step_timer(name, frames, size, batch)
    return run(steps), parameters


def serve(name, frames, size, batch):
    """Builds and warms up, says so as a JSON line, then answers each line ``N`` on standard
    input with the seconds of ``N`` more steps (a JSON line), until standard input ends."""
    run, parameters = step_timer(name, frames, size, batch)
    print(json.dumps(dict(ready=True, trainable_parameters=parameters, **versions())), flush=True)
    for line in sys.stdin:
        print(json.dumps(dict(step_seconds_all=run(int(line)))), flush=True)


def time_grouped_convs(shapes, repeats):
    """Median seconds of forward + backward of one grouped 3x3x3 convolution per shape."""
    results = []
    for frames, height, width, channels, stride, groups in shapes:
        conv = conv3d(channels, channels, 3, stride, groups=groups)
        x = torch.randn(1, channels, frames, height, width, requires_grad=True)

        def once(conv=conv, x=x):
            conv.zero_grad()
            x.grad = None
            conv(x).square().sum().backward()

        once()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            once()
            times.append(time.perf_counter() - start)
        results.append(statistics.median(times))
    return results


def versions():
    return {"torch": torch.__version__, "threads": torch.get_num_threads()}


def print_parameters():
    torch.set_grad_enabled(False)
    for name, kwargs in [
        ("resnet10", dict(depth=10)),
        ("resnet18", dict(depth=18)),
        ("resnet34", dict(depth=34)),
        ("resnet50", dict(depth=50)),
        ("resnet101", dict(depth=101)),
        ("resnet152", dict(depth=152)),
        ("resnext50", dict(depth=50, resnext=True)),
        ("resnext101", dict(depth=101, resnext=True)),
        ("resnext152", dict(depth=152, resnext=True)),
    ]:
        model = ResNet3D(**kwargs)
        clips = torch.zeros(1, 3, 16, 112, 112)
        shape = tuple(model(clips).shape)
        print(f"{name:12s} trainable={trainable_parameters(model):>11,d} output={shape}")
    print(f"torch {torch.__version__}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    step = commands.add_parser("step", help="time SGD training steps of one backbone")
    step.add_argument("backbone")
    step.add_argument("--frames", type=int, default=16)
    step.add_argument("--size", type=int, default=112)
    step.add_argument("--batch", type=int, default=1)
    step.add_argument("--steps", type=int, default=3)
    step.add_argument(
        "--serve", action="store_true", help="time steps on request from standard input"
    )
    conv = commands.add_parser("conv", help="time grouped 3x3x3 convolutions")
    conv.add_argument("shapes", help="JSON list of [time, height, width, channels, stride, groups]")
    conv.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.command == "step" and args.serve:
        serve(args.backbone, args.frames, args.size, args.batch)
    elif args.command == "step":
        times, parameters = time_steps(
            args.backbone, args.frames, args.size, args.batch, args.steps
        )
        print(
            json.dumps(dict(step_seconds_all=times, trainable_parameters=parameters, **versions()))
        )
    elif args.command == "conv":
        seconds = time_grouped_convs(json.loads(args.shapes), args.repeats)
        print(json.dumps(dict(seconds=seconds, **versions())))
    else:
        print_parameters()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
