from __future__ import annotations

import pytest
import torch

from dlkit.train import describe_device, get_device, mps_available


def test_auto_prefers_cuda_then_mps_then_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    assert get_device("auto").type == expected
    assert get_device().type == expected


def test_explicit_cpu_is_honoured() -> None:
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_clear_error() -> None:
    with pytest.raises(
        RuntimeError, match=r"'cuda' was asked for, but CUDA is not available.*use 'auto' or 'cpu'"
    ):
        get_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_index_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="CUDA device"):
        get_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", ""])
def test_bad_names_say_what_is_expected(spec: str) -> None:
    with pytest.raises(ValueError, match="expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        get_device(spec)


def test_describe_cpu() -> None:
    assert describe_device("cpu") == f"cpu ({torch.get_num_threads()} threads)"
