"""Optimizers (``torch.optim.Optimizer`` subclasses) and learning-rate schedules
(``torch.optim.lr_scheduler`` compatible), written to teach and checked against
``torch.optim``.

Optimizers: :class:`SGD`, :class:`Adagrad`, :class:`RMSprop`, :class:`Adam`, :class:`AdamW`,
with PyTorch's constructor arguments and trajectories. Schedules: :class:`StepLR`,
:class:`MultiStepLR`, :class:`ExponentialLR`, :class:`CosineAnnealingLR`,
:class:`WarmupCosine`, :class:`OneCycleLR` and :class:`ReduceLROnPlateau`, with PyTorch's
learning-rate sequences where PyTorch has the same schedule. The schedules are also
importable under PyTorch's path, ``dlkit.optim.lr_scheduler.<Name>`` (the same objects).
"""

from dlkit.optim import lr_scheduler
from dlkit.optim.adagrad import Adagrad
from dlkit.optim.adam import Adam, AdamW
from dlkit.optim.one_cycle import OneCycleLR
from dlkit.optim.param_groups import weight_decay_groups
from dlkit.optim.plateau import ReduceLROnPlateau
from dlkit.optim.rmsprop import RMSprop
from dlkit.optim.schedules import (
    ClosedFormSchedule,
    CosineAnnealingLR,
    ExponentialLR,
    MultiStepLR,
    StepLR,
    WarmupCosine,
)
from dlkit.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ClosedFormSchedule",
    "CosineAnnealingLR",
    "ExponentialLR",
    "MultiStepLR",
    "OneCycleLR",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "WarmupCosine",
    "lr_scheduler",
    "weight_decay_groups",
]
