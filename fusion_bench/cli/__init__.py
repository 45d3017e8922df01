"""The ``fusion-bench`` command line: the group, :func:`main` and the console script's
:func:`entry` in :mod:`.app`, shared configuration options in :mod:`.options`, one module per
verb. A plugin adds a verb through the ``register_commands(cli)`` hook; it shows in ``--help``
and ``fusion-bench plugins``."""

from __future__ import annotations

from . import (  # noqa: F401 - verbs
    bench,
    extract,
    leaderboard,
    listing,
    new_plugin,
    predict,
    run,
    submit,
    sweep,
)
from .app import BUILTIN_VERBS, State, cli, entry, main

BUILTIN_VERBS.update(cli.commands)

__all__ = ["cli", "entry", "main", "State"]
