"""``python -m fusion_bench ...``: the ``fusion-bench`` command."""

import sys

from fusion_bench.cli import entry

sys.exit(entry())
