"""dlkit: the package behind the dlkit deep-learning course.

Subpackages, one job each (they mirror PyTorch's layout):

- ``dlkit.scratch``: NumPy-only, from-scratch implementations (never imports torch);
- ``dlkit.nn``: PyTorch modules and functional ops written to teach;
- ``dlkit.optim``: optimizers and learning-rate schedules;
- ``dlkit.train``: GPU-aware training helpers (device choice, ...);
- ``dlkit.data``: offline datasets (nothing is ever downloaded);
- ``dlkit.text``: tokenization (byte-level BPE trained from scratch; pure Python);
- ``dlkit.viz``: matplotlib plots and ipywidgets explorers;
- ``dlkit.grading``: checks used inside graded notebook cells;
- ``dlkit.instructor``: the nbgrader pipeline behind the ``dlkit`` command line.

Importing ``dlkit`` itself is cheap: it does not import torch.
"""

from dlkit.runtime import by_mode, quick_mode

__version__ = "0.1.0"

__all__ = ["__version__", "by_mode", "quick_mode"]
