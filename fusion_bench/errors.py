"""Exceptions a user can cause. The CLI prints them as one line and exits non-zero; warnings too
are one line (:func:`one_line_warning`), in the CLI's process and in a sweep's workers."""

import sys


class FusionBenchError(Exception):
    """A problem with the user's input (config, data, plugin); the message says what to do."""


class PluginError(FusionBenchError):
    """A plugin failed to load or register, or two plugins claim one name."""


class ConfigError(FusionBenchError):
    """An unknown config key, a value of the wrong type, or an impossible setting."""


class DataError(FusionBenchError):
    """Malformed or inconsistent data; the message names the file/video, line or field."""


class StorageError(FusionBenchError):
    """What fusion-bench writes (a record, a model, a table) cannot be written, or the store's
    index cannot be used: a full disk, a folder made read-only. What was there is kept, and
    nothing half-written is left."""


class Note(UserWarning):
    """Something the user should know that is no error (an ignored metadata key): a warning the
    CLI prints as one line, ``note: ...``."""


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A ``warnings.showwarning`` that prints ``warning: <message>`` (``note: ...`` for a
    :class:`Note`) as one line, without Python's file, line number and source line: what the CLI
    shows unless ``--debug``, and what a sweep's worker processes show when their driver does."""
    kind = "note" if issubclass(category, Note) else "warning"
    print(f"{kind}: {message}", file=sys.stderr if file is None else file, flush=True)


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocation that failed (Python's MemoryError, torch's out of memory
    on a GPU or on the CPU), told without importing torch: no user's mistake to name, but a
    setting too large for the machine."""
    text = str(e).lower()
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text))
