"""The ``fusion-bench`` command line: the group and :func:`main` in :mod:`.app`, shared
configuration options in :mod:`.options`, one module per verb. A plugin adds a verb through the
``register_commands(cli)`` hook; it shows in ``--help`` and ``fusion-bench plugins``."""

from __future__ import annotations

from . import bench, extract, leaderboard, listing, predict, run, submit, sweep  # noqa: F401 - verbs
from .app import BUILTIN_VERBS, State, cli, main

BUILTIN_VERBS.update(cli.commands)

__all__ = ["cli", "main", "State"]
