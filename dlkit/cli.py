"""The ``dlkit`` command line (also ``python -m dlkit``) for instructors and contributors.

It wraps nbgrader; plain ``nbgrader`` commands run from ``course/`` keep working.

    dlkit doctor                      is this installation ready for the course?
    dlkit release [CHAPTER ...]       generate the student notebooks into course/release/
    dlkit check [CHAPTER ...]         prove each chapter's grading is sound (nbgrader round trip)
    dlkit grade SUBMISSIONS --out DIR grade a folder of submissions into DIR/grades.csv and .json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


def _course(args: argparse.Namespace):
    from dlkit.instructor.course import Course, find_course_root

    return Course(Path(args.course).resolve() if args.course else find_course_root())


def _doctor(args: argparse.Namespace) -> int:
    from dlkit.doctor import course_checks, environment_checks, format_checks, healthy
    from dlkit.instructor.course import find_course_root

    checks = environment_checks()
    try:
        root = Path(args.course).resolve() if args.course else find_course_root()
    except FileNotFoundError as err:
        print(format_checks(checks))
        print(f"FAIL  course: {err}")
        return 1
    checks += course_checks(root)
    print(format_checks(checks))
    ok = healthy(checks)
    print("\nready for the course" if ok else "\nnot ready: fix the FAIL lines above")
    return 0 if ok else 1


def _release(args: argparse.Namespace) -> int:
    course = _course(args)
    chapters = course.select(args.chapters)
    course.generate(chapters)
    for chapter in chapters:
        print(f"released {course.release_notebook(chapter).relative_to(course.root.parent)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from dlkit.instructor.roundtrip import check_chapter

    course = _course(args)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="dlkit-check-") as tmp:
        for chapter in course.select(args.chapters):
            report = check_chapter(course, chapter, Path(tmp))
            print(report.summary())
            for problem in report.problems:
                print(f"    - {problem}")
            failed += not report.ok
    return 1 if failed else 0


def _grade(args: argparse.Namespace) -> int:
    from dlkit.instructor.grade import grade_submissions

    extra = [f"--Execute.timeout={args.timeout}"] if args.timeout else []
    report = grade_submissions(
        _course(args),
        Path(args.submissions),
        Path(args.out),
        args.chapter,
        nbgrader_args=extra,
        progress=print,
    )
    for note in report.notes:
        print(f"note: {note}")
    print(
        f"\nwrote {report.out / 'grades.csv'}, {report.out / 'grades.json'} and {report.out / 'feedback'}/"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlkit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", help="course root (default: found from the current folder)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("doctor", help="check versions, device and the course install").set_defaults(
        run=_doctor
    )
    for name, run, text in (
        ("release", _release, "generate the student versions into course/release/"),
        ("check", _check, "round-trip chapters through nbgrader and verify the scores"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="default: every chapter")
        p.set_defaults(run=run)

    p = sub.add_parser("grade", help="grade a folder of submissions")
    p.add_argument(
        "submissions", help="SUBMISSIONS/<student_id>/<chapter>/<chapter>.ipynb or <student_id>.zip"
    )
    p.add_argument("--out", required=True, help="folder for grades.csv, grades.json and feedback/")
    p.add_argument(
        "--chapter",
        action="append",
        default=[],
        help="chapter to grade (repeatable; default: every chapter submitted)",
    )
    p.add_argument("--timeout", type=int, help="seconds per cell (default: nbgrader_config.py's)")
    p.set_defaults(run=_grade)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"dlkit {args.command}: error: {err}", file=sys.stderr)
        return 2
