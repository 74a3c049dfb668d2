"""Optimizers (``torch.optim.Optimizer`` subclasses) and learning-rate schedules
(``torch.optim.lr_scheduler`` compatible), written to teach and checked against
``torch.optim``. Filled in by the optimizers chapter.

Optimizers: :class:`SGD`, :class:`Adagrad`, :class:`RMSprop`, :class:`Adam`, :class:`AdamW`,
with PyTorch's constructor arguments and trajectories.
"""

from dlkit.optim.adagrad import Adagrad
from dlkit.optim.adam import Adam, AdamW
from dlkit.optim.rmsprop import RMSprop
from dlkit.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "RMSprop"]
