"""``python -m fusion_bench.cli``: the command line (``bench --all`` runs its children so)."""

import sys

from . import entry

sys.exit(entry())
