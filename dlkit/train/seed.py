"""Reproducibility: seed every random number generator a training run touches.

A PyTorch program draws random numbers from three independent generators: Python's
``random``, NumPy's global ``np.random`` and PyTorch's (one on the CPU plus one per
GPU). Weight initialisation, dropout masks, data shuffling and augmentations all read
from them, so two runs agree bit for bit only when all of them start from the same state
and the arithmetic itself is deterministic.

- :func:`seed_everything` puts every generator in a known state (call it at the top of a
  run, before building the model).
- :func:`rng_state` / :func:`set_rng_state` capture and restore the generators' exact
  states; checkpoints store them so a resumed run draws the same dropout masks.
- :func:`derive_seed` turns ``(seed, epoch)`` into an independent seed, so that an
  epoch's shuffle order depends on nothing but the seed and the epoch number.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

# cuBLAS needs a fixed workspace to give run-to-run identical results (NVIDIA's
# documented setting; ":16:8" uses less memory but may be slower).
CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every CUDA device).

    Args:
        seed: any integer in ``[0, 2**32)``; the same seed gives the same random draws.
        deterministic: also ask PyTorch for deterministic kernels. This sets
            ``torch.use_deterministic_algorithms(True)`` (an op with no deterministic
            implementation then *raises* instead of silently varying),
            ``torch.backends.cudnn.deterministic = True``,
            ``torch.backends.cudnn.benchmark = False`` (no timing-based kernel choice) and,
            unless already set, the environment variable ``CUBLAS_WORKSPACE_CONFIG``, which
            must be set before the first cuBLAS call of the process. With the default
            ``False`` these global switches are left as they are.

    On a CPU, seeding alone already makes two runs of the same program bit-identical;
    ``deterministic=True`` matters on GPUs, where some kernels (atomic adds in scatter,
    some convolution algorithms) are otherwise nondeterministic.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32) (NumPy's limit), got {seed}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (the legacy global generator is what code draws from)
    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device's generator
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def derive_seed(seed: int, *keys: int) -> int:
    """A well-mixed 63-bit seed for the stream named by ``(seed, *keys)``.

    ``derive_seed(seed, epoch)`` gives each epoch its own shuffle seed. Unlike
    ``seed + epoch``, neighbouring seeds do not give overlapping streams
    (NumPy's ``SeedSequence`` hashes the whole tuple).
    """
    words = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])  # < 2**63: fits torch's int64 seed


def rng_state() -> dict[str, Any]:
    """The exact state of every generator, as plain Python values and tensors.

    Returns a dict with ``"python"`` (``random.getstate()``), ``"numpy"`` (the
    Mersenne Twister key as an ``int64`` tensor plus its position), ``"torch"`` (the CPU
    generator's ``uint8`` state) and ``"cuda"`` (one state per visible GPU, or ``None``
    without CUDA). Only types that ``torch.load(weights_only=True)`` accepts are used, so
    checkpoints holding this state load without unpickling arbitrary objects.
    """
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    assert isinstance(numpy_state, dict)  # legacy=False always returns the dict form
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators captured by :func:`rng_state`.

    CUDA states are restored only when CUDA is available and the same number of GPUs is
    visible as when they were captured (a checkpoint written on a GPU can be resumed on a
    CPU; the CPU, Python and NumPy generators are restored in every case).
    """
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {
                "key": numpy_state["key"].cpu().numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())  # map_location may have moved it
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
