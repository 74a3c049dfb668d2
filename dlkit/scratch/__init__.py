"""From-scratch implementations in NumPy alone.

Everything here is written so a learner can read how it works, and nothing here may
import torch (``tests/test_package_layout.py`` enforces it): the point of these
modules is that no framework does the work. The autograd engine, layers, conv, RNN
and attention land here chapter by chapter.
"""

__all__: list[str] = []
