"""``python -m dlkit``: the same command line as the ``dlkit`` console script."""

from dlkit.cli import main

raise SystemExit(main())
