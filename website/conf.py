"""Sphinx configuration for the course website.

``tools/build_website.py`` copies this folder next to the generated chapter, glossary and
benchmark pages and builds it; the notebooks arrive executed and stripped, so nothing runs here.
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util.fileutil import copy_asset

project = "dlkit"
author = "the dlkit authors"
copyright = "dlkit authors, MIT licence"

extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
exclude_patterns = ["_include"]  # included into pages, not pages themselves

# The notebooks were executed by tools/build_website.py (quick mode, then stripped).
nb_execution_mode = "off"
# Widgets arrive as static snapshots: no widget manager scripts (they would load from a CDN).
nb_ipywidgets_js: dict[str, dict[str, str]] = {}
nb_merge_streams = True

html_theme = "furo"
html_title = "dlkit · deep learning, built and graded"
html_static_path = ["_static"]
html_css_files = ["dlkit.css"]
html_copy_source = False  # the sources are the stripped notebooks: nothing to add

# MathJax 3 served from the site itself (pages work offline), from sphinx-mathjax-offline's
# copy; only what the TeX-to-CHTML bundle loads at run time is copied (not its 24 MB).
mathjax_path = "mathjax/tex-chtml.js"
MATHJAX_PARTS = ["tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui", "a11y"]


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    mathjax = Path(
        str(distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline"))
    )
    for part in MATHJAX_PARTS:
        source = mathjax / "static" / "mathjax" / part
        target = Path(app.outdir) / "_static" / "mathjax" / part
        if source.is_dir():
            copy_asset(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())


def setup(app: Sphinx) -> None:
    app.connect("build-finished", _copy_mathjax)
