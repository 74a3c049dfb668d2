"""Optimizers (``torch.optim.Optimizer`` subclasses) and learning-rate schedules
(``torch.optim.lr_scheduler`` compatible), written to teach and checked against
``torch.optim``. Filled in by the optimizers chapter.
"""

__all__: list[str] = []
