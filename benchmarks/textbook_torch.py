"""The textbook PyTorch DCGAN, as a user would otherwise run it: the comparison baseline.

Architecture and loop are those of pytorch/examples ``dcgan/main.py`` (ngf = ndf = 64,
64x64 images, N(0, 0.02) initialisation, Adam(2e-4, beta1 0.5), BCE on a sigmoid), with
the 40 attribute bits of each real image appended to its 100 noise floats, so the
generator's input is 140 numbers as ours is 40 + noise. Its per-batch loop, unchanged:

    D: backward on the real batch, G(noise) once, backward on fake.detach(), D step
    G: D(fake) again, backward through D and G, G step

Real batches come from this project's cache and pipeline (dataset.CelebaBatches), the
same as for our trainer, so only the training differs. Used by bench.py; not a trainer.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from attributes import NUM_ATTRIBUTES

NOISE, NGF, NDF, CHANNELS = 100, 64, 64, 3


def build_generator(nz: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(nz, NGF * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(NGF * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NGF * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NGF * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NGF),
        nn.ReLU(True),
        nn.ConvTranspose2d(NGF, CHANNELS, 4, 2, 1, bias=False),
        nn.Tanh(),
    )


def build_discriminator() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(CHANNELS, NDF, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NDF * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NDF * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(NDF * 8),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False),
        nn.Sigmoid(),
    )


def weights_init(m: nn.Module) -> None:
    """The example's initialisation: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm."""
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def forward_flops(module: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds x 2 of one image's forward pass through the convolutions and
    linear layers (elementwise work and BatchNorm are left out, as is usual)."""
    total = 0

    def count(layer, inputs, output):
        nonlocal total
        kernel = int(np.prod(layer.kernel_size))
        if isinstance(layer, nn.ConvTranspose2d):  # each input pixel scatters a kernel
            total += inputs[0][0].numel() * layer.out_channels * kernel
        else:
            total += output[0].numel() * layer.in_channels * kernel

    hooks = [
        m.register_forward_hook(count)
        for m in module.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        module.eval()(example[:1])
    module.train()
    for hook in hooks:
        hook.remove()
    return 2 * total


def unsupported() -> str | None:
    """None: this loop runs whatever the Keras backend (it does not use Keras)."""
    return None


def measure(source: str, image_size: int, batch_size: int, steps: int) -> dict:
    """Real images per second through the example's loop, after warm-up steps; with the
    forward FLOPs of one image through each network."""
    import dataset

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True  # as the example sets it: cuDNN picks its fastest kernels
    torch.manual_seed(0)
    nz = NOISE + NUM_ATTRIBUTES
    net_g = build_generator(nz).to(device)
    net_d = build_discriminator().to(device)
    net_g.apply(weights_init)
    net_d.apply(weights_init)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    cache = dataset.build_cache(source, image_size, progress=False)
    real_batches = dataset.CelebaBatches(cache, "train", batch_size, seed=0, flip=True)

    def step(index: int) -> float:
        images, attrs = real_batches[index % len(real_batches)]
        real = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
        attrs = torch.from_numpy(attrs).to(device)
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        net_d.zero_grad()
        label = torch.full((batch_size,), 1.0, device=device)
        err_d_real = criterion(net_d(real).view(-1), label)
        err_d_real.backward()
        noise = torch.cat([torch.randn(batch_size, NOISE, device=device), attrs], 1)
        fake = net_g(noise.view(batch_size, nz, 1, 1))
        label.fill_(0.0)
        err_d_fake = criterion(net_d(fake.detach()).view(-1), label)
        err_d_fake.backward()
        opt_d.step()
        # (2) Update G network: maximize log(D(G(z)))
        net_g.zero_grad()
        label.fill_(1.0)
        err_g = criterion(net_d(fake).view(-1), label)
        err_g.backward()
        opt_g.step()
        return err_g.item()  # the example prints its losses each step: a sync point

    warmup = 3
    for index in range(warmup):
        step(index)
    started = time.perf_counter()
    for index in range(warmup, warmup + steps):
        step(index)
    seconds = time.perf_counter() - started
    return {
        "images": steps * batch_size,
        "seconds": seconds,
        "flops": {
            "generator": forward_flops(net_g, torch.zeros(1, nz, 1, 1, device=device)),
            "discriminator": forward_flops(net_d, torch.zeros(1, 3, 64, 64, device=device)),
        },
        "threads": torch.get_num_threads(),
        "device": str(device),
        "version": f"torch {torch.__version__}",
    }
