"""nbgrader configuration for the dlkit course.

Run nbgrader (or the ``dlkit`` command line, which wraps it) from this folder:
``source/<chapter>/<chapter>.ipynb`` are the instructor versions, ``release/`` the
student versions. Every setting below answers a way a PyTorch course can go wrong.
"""

c = get_config()

c.CourseDirectory.course_id = "dlkit"

# Training cells take longer than nbgrader's 30 s default. Under nbgrader every
# chapter runs in quick mode (about a minute in all), so 5 minutes per cell is room
# for slow laptops while an endless loop in a submission still ends.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# nbgrader scores a test cell zero if it writes anything to stderr, even when its
# answer is right: a library warning, logging.warning, a C library writing to fd 2.
# The kernel client nbgrader's Execute starts, in autograde and in Validate alike,
# records every stderr stream as stdout with each line marked "[stderr] "
# (dlkit.instructor.stderr_outputs): still visible, never fatal, and out of the
# answer's reach. An exception still costs the cell's points. (Chapters' setup
# cells also print Python warnings on stdout under nbgrader: dlkit.grading.prepare_kernel.)
c.AsyncKernelManager.client_factory = "dlkit.instructor.stderr_outputs.StdoutKernelClient"

# A learner who deletes a test cell gets it back at autograde (and scored).
c.OverwriteCells.add_missing_cells = True

# Long outputs (a runaway print in a loop) are cut in the graded notebook and feedback.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 40

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
