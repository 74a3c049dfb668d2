"""The nbgrader pipeline behind the ``dlkit`` command line.

It wraps nbgrader rather than replacing it: every step runs plain ``nbgrader``
commands in a course directory, and plain ``nbgrader`` commands run from
``course/`` keep working.

- :mod:`dlkit.instructor.course`: where the course lives and how to run nbgrader in it;
- :mod:`dlkit.instructor.gradebook`: scores read back from nbgrader's gradebook;
- :mod:`dlkit.instructor.failures`: why a graded cell failed, read from the autograded notebook;
- :mod:`dlkit.instructor.stderr_outputs`: the kernel client that keeps stderr from costing points;
- :mod:`dlkit.instructor.roundtrip`: the proof that a chapter's grading is sound (``dlkit check``);
- :mod:`dlkit.instructor.submissions`: collecting student submissions (folders or zip files);
- :mod:`dlkit.instructor.grade`: grading a folder of submissions into reports (``dlkit grade``).
"""

from dlkit.instructor.course import Course, NbgraderError, find_course_root
from dlkit.instructor.grade import GradeReport, grade_submissions
from dlkit.instructor.roundtrip import RoundTripReport, check_chapter

__all__ = [
    "Course",
    "GradeReport",
    "NbgraderError",
    "RoundTripReport",
    "check_chapter",
    "find_course_root",
    "grade_submissions",
]
