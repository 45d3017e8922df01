"""Start-up of a command that trains (``run``, ``sweep``, ``bench``): the modules its work needs,
imported at once after the command's checks, and, in the console process, the objects they leave
alive taken out of the cyclic collector's sight.

Why: torch and ``torch._dynamo`` (which ``torch.optim`` imports at the first optimizer) leave
~300k objects alive. While they load, each full collection the allocations trigger walks every
object loaded so far and finds nothing to free: five of them, ~0.4 s of a default ``run`` on a
2-core CPU, and every later full collection walks them again. In the console process those
objects live as long as the process, so once they are loaded they are frozen (``gc.freeze``): the
collector skips them from then on. Only the console's own process freezes; a process that calls
:func:`fusion_bench.cli.main` and goes on (tests, notebooks, scripts) keeps its collector as it
was, since a freeze would also keep whatever garbage it then held alive for good.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

_console = False  # set by app.entry(): this interpreter ends when the command returns


def console_process() -> None:
    """Mark this process as the console's (``fusion-bench``, ``python -m fusion_bench``)."""
    global _console
    _console = True


def import_training_modules(checks: Callable[[], object] | None = None) -> None:
    """Import the run path, torch and ``torch._dynamo`` now, before the command's work.

    Called after a command's own checks; ``checks`` (the run's preflight) runs first, inside:
    checking a plugin's options imports the plugin, and with it torch, but a misspelt name or
    option still fails before ``torch._dynamo`` loads. In the console process the collector is
    paused while all this loads and the objects are frozen after (see the module docstring);
    elsewhere this is only the checks and the imports."""
    paused = _console and gc.isenabled()
    if paused:
        gc.disable()
    try:
        if checks is not None:
            checks()
        import torch._dynamo  # noqa: F401 - torch.optim imports it at the first optimizer

        from .. import runs  # noqa: F401 - torch, the model, the training loop
    finally:
        if _console:
            gc.freeze()
        if paused:
            gc.enable()
