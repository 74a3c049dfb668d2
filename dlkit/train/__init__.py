"""GPU-aware training helpers: device choice first; the trainer, mixed precision,
checkpoints and data parallelism build on it."""

from dlkit.train.device import describe_device, get_device, mps_available

__all__ = ["describe_device", "get_device", "mps_available"]
