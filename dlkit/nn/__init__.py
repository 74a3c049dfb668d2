"""PyTorch modules and functional ops written to teach.

Same names and argument conventions as ``torch.nn`` / ``torch.nn.functional``, built
from primitive tensor operations so the math is visible, and tested against PyTorch's
own implementations. Filled in by the chapters on activations, losses, CNNs, RNNs
and Transformers.
"""

__all__: list[str] = []
