"""sepkit_torch test set-up: one torch thread, and tiny models that look pretrained."""

from __future__ import annotations

import pytest
import torch

from sepkit_torch import ECMRNet

# Two threads fighting over two cores was measured 50x slower.
torch.set_num_threads(1)


def pretend_pretrained(model: ECMRNet, seed: int = 0) -> ECMRNet:
    """Give every GResBlock a non-zero ``beta``, as pretraining would.

    A fresh block has ``beta = 0`` (the identity), which would make the gradients of its
    convolutions exactly zero and hide a missing gradient.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".beta"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    """Uniform [0, 1) images from a fixed seed."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def tiny():
    """A tiny ECMRNet after (pretend) pretraining, no task yet."""
    torch.manual_seed(0)
    return pretend_pretrained(ECMRNet.from_preset("tiny"))


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Override of the sepkit fixture: these tests call no numba kernel, so skip compiling."""
