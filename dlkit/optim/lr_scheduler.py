"""dlkit's learning-rate schedules under PyTorch's module path, ``torch.optim.lr_scheduler``.

``dlkit.optim.lr_scheduler.StepLR`` is ``dlkit.optim.StepLR`` (the same object, not a copy),
so code written for ``torch.optim.lr_scheduler`` switches to dlkit by changing the package
name only::

    from dlkit.optim import lr_scheduler  # like: from torch.optim import lr_scheduler

    scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)

Where PyTorch has the same schedule (:class:`StepLR`, :class:`MultiStepLR`,
:class:`ExponentialLR`, :class:`CosineAnnealingLR`, :class:`OneCycleLR`,
:class:`ReduceLROnPlateau`) the name, the constructor's arguments and the learning-rate
sequence are PyTorch's. :class:`WarmupCosine` (linear warm-up, then cosine decay) and
:class:`ClosedFormSchedule` (the base class of the closed-form schedules) are dlkit's own;
PyTorch has no class of those names. The classes are defined in
:mod:`dlkit.optim.schedules`, :mod:`dlkit.optim.one_cycle` and :mod:`dlkit.optim.plateau`.
"""

from dlkit.optim.one_cycle import OneCycleLR
from dlkit.optim.plateau import ReduceLROnPlateau
from dlkit.optim.schedules import (
    ClosedFormSchedule,
    CosineAnnealingLR,
    ExponentialLR,
    MultiStepLR,
    StepLR,
    WarmupCosine,
)

__all__ = [
    "ClosedFormSchedule",
    "CosineAnnealingLR",
    "ExponentialLR",
    "MultiStepLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "StepLR",
    "WarmupCosine",
]
