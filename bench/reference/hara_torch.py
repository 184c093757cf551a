"""A PyTorch build of Hara et al.'s 3D ResNet/ResNeXt (CVPR 2018), written for this project.

It is the reference our Keras backbones are checked against: trainable-parameter counts
(tests/test_backbones.py quotes the numbers this file prints) and, in benchmarks, training
step time on the same machine. It needs only ``torch`` (CPU build), installed in a separate
environment: ``python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0``.

    /tmp/torchenv/bin/python bench/reference/hara_torch.py

prints the trainable-parameter count of every backbone, without the classifier.
"""

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


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, width, stride, shortcut_type, cardinality=None):
        super().__init__()
        self.residual = nn.Sequential(
            conv3d(in_channels, width, 3, stride),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            conv3d(width, width, 3),
            nn.BatchNorm3d(width),
        )
        self.shortcut = shortcut(in_channels, width, stride, shortcut_type)

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels, width, stride, shortcut_type, cardinality=None):
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
        )
        self.shortcut = shortcut(in_channels, out, stride, shortcut_type)

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


class ResNeXtBottleneck(Bottleneck):
    expansion = 2


class ResNet3D(nn.Module):
    """Clips ``(batch, 3, time, height, width)`` to the last feature map (no classifier)."""

    def __init__(self, depth, resnext=False, shortcut_type=None, cardinality=32):
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
        for stage, (width, blocks) in enumerate(zip(widths, BLOCKS_PER_STAGE[depth])):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                layers.append(block(in_channels, width, stride, shortcut_type, cardinality))
                in_channels = width * block.expansion
        self.features = nn.Sequential(*layers)

    def forward(self, clips):
        return self.features(clips)


def trainable_parameters(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def main():
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


if __name__ == "__main__":
    main()
