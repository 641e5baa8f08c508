"""FLOP accounting for the benchmarks: the forward FLOPs of one image through a Keras
model, and a training step's FLOPs per real image from how often each network runs.

FLOPs are 2 x multiply-adds of the Dense, convolution and projection kernels
(elementwise work and BatchNorm left out, as is usual). Shared by bench.py and the
textbook loops; it times nothing.
"""

from __future__ import annotations

import math

# Work per real image of one training step, in forward passes of each network: "train"
# is forward + backward for inputs and weights (3 forward passes' FLOPs), "through" is
# forward + backward for inputs only (2: gradients flow to G through a frozen D),
# "forward" is inference. ours' D share is read from its batches (n real and n fake:
# 2; the wrong-attribute pairs reuse the real images' features) and so is whether G
# predicts D's fakes (all but one lever); the others' from their loops.
PASS_COST = {"forward": 1, "through": 2, "train": 3}
SCHEDULES = {
    # G predicts D's fakes, then trains inside the stacked model through a frozen D.
    "ours": {"generator": {"forward": 1, "train": 1}, "discriminator": {"through": 1}},
    # G runs once; D trains on real, on fake.detach(), and the G step's backward also
    # computes D's weight gradients (then discarded by zero_grad).
    "torch": {"generator": {"train": 1}, "discriminator": {"train": 3}},
    # keras-io: G runs for D's fakes, then again under the G tape.
    "keras-io": {
        "generator": {"forward": 1, "train": 1},
        "discriminator": {"train": 2, "through": 1},
    },
}


def forward_flops(model) -> int:
    """2 x multiply-adds of one image's forward pass through a Keras model's Dense,
    convolution and projection kernels (elementwise work and BatchNorm left out, as is
    usual): kernel size times the positions it is applied at."""
    total = 0
    for layer in _leaves(model):
        kernel = next((w for w in layer.weights if w.name in ("kernel", "embedding")), None)
        if kernel is None:
            continue
        positions = 1
        if hasattr(layer, "kernel_size"):  # convolutions: output positions; transposed
            # ones scatter the kernel from each input position
            shape = layer.input.shape if "Transpose" in type(layer).__name__ else layer.output.shape
            first = layer.data_format == "channels_first"
            positions = math.prod(shape[2:] if first else shape[1:-1])
        total += positions * math.prod(kernel.shape)
    return 2 * total


def _leaves(model):
    for layer in model.layers:
        yield from _leaves(layer) if hasattr(layer, "layers") else (layer,)


def training_flops(schedule: dict, flops: dict) -> float:
    """FLOPs per real image of one training step: passes x cost x forward FLOPs."""
    return sum(
        count * PASS_COST[kind] * flops[network]
        for network, passes in schedule.items()
        for kind, count in passes.items()
    )
