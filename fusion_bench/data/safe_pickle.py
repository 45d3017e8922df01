"""Reading a pickle that holds only numpy arrays, numbers, strings and plain containers.

A pickle names functions that run while it loads (``__reduce__``): a file from elsewhere can run
any code with ``pickle.load``. :func:`load` admits only the globals that numpy arrays and scalars
need and the plain built-in containers; any other global (``os.system``, ``torch`` tensors, a
class of some library) is refused with a :class:`DataError` naming the file and the global,
before anything it names is imported or called.

Both spellings of numpy's module paths are admitted: ``numpy.core.multiarray`` (files written
with numpy 1.x) and ``numpy._core.multiarray`` (numpy 2.x), each resolved to the numpy installed
here. ``_codecs.encode`` is admitted because protocol-2 pickles store an array's bytes as a
latin-1 string re-encoded by it (it encodes a string; it runs nothing).
"""

from __future__ import annotations

import collections
import importlib
import pickle
from pathlib import Path

from ..errors import DataError

# (module, name) -> (candidate modules of this numpy, name); the first importable one is used
_NUMPY = {
    ("numpy.core.multiarray", "_reconstruct"): "multiarray",
    ("numpy._core.multiarray", "_reconstruct"): "multiarray",
    ("numpy.core.multiarray", "scalar"): "multiarray",
    ("numpy._core.multiarray", "scalar"): "multiarray",
    ("numpy.core.numeric", "_frombuffer"): "numeric",  # protocol 5: an array's buffer
    ("numpy._core.numeric", "_frombuffer"): "numeric",
}
_PLAIN = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    *(("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes",
                                 "bytearray", "int", "float", "complex", "bool")),
}


def _numpy_attr(submodule: str, name: str):
    for mod in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise DataError(f"numpy has no {submodule}.{name} to rebuild an array with")  # pragma: no cover


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if module == "__builtin__":  # protocols 0-2 spell builtins as Python 2 did
            module = "builtins"
        if (module, name) in _NUMPY:
            return _numpy_attr(_NUMPY[module, name], name)
        if (module, name) in _PLAIN:
            if module == "collections":
                return collections.OrderedDict
            return super().find_class(module, name)
        hint = ("; it holds torch tensors (MMSA-FET's return_type='pt'): save it with "
                "return_type='np'" if module.split(".")[0] == "torch" else
                "; only numpy arrays, numbers, strings and plain containers are read")
        raise DataError(f"{self.path}: refused to load the global {module}.{name} that the pickle "
                        f"names (a pickle can run code when loaded){hint}")

    def persistent_load(self, pid):
        raise DataError(f"{self.path}: the pickle refers to a persistent object {str(pid)[:60]!r}; "
                        "only numpy arrays, numbers, strings and plain containers are read")


def load(path: str | Path):
    """The object pickled in ``path``, read with the restricted unpickler (module docstring).
    DataError names the file for a refused global, a truncated or garbled pickle, or a file that
    cannot be read."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _Unpickler(f, path).load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give the pickled feature file itself") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read: {e}") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - a garbled pickle raises many kinds of error
        raise DataError(f"{path}: not a readable pickle ({type(e).__name__}: {e}); give a feature "
                        "file as MMSA writes it (pickle.dump of a dict of numpy arrays)") from None
