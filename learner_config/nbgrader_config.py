"""The learner's nbgrader settings are the course's own (cell timeout, the kernel client
that records stderr as stdout): Jupyter finds this file on its config path wherever the
server starts, so the Validate button runs a notebook as the grader will. The path is relative to this folder."""

load_subconfig("../course/nbgrader_config.py")  # noqa: F821 (injected by traitlets)
