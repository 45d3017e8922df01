"""The restricted unpickler: numpy arrays (both numpy module spellings, every protocol) load; a
pickle that would run code is refused before it runs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from fusion_bench.data.mmsa import MMSADataset
from fusion_bench.data.safe_pickle import load
from fusion_bench.errors import DataError


class _Marker:
    """Unpickling it would create a file (through os.system, as an attack would)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _payload():
    return {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.array(["ab", "c"]),
            "o": np.array(["a", None], dtype=object), "f": np.float64(1.5), "i": np.int64(-3),
            "t": (1, 2.0, "three", b"four", None, True), "l": [{"k": {1, 2}}, frozenset({3})]}


def _same(a, b):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
            assert a[k].dtype == b[k].dtype
        else:
            assert a[k] == b[k] and type(a[k]) is type(b[k])


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_arrays_and_plain_values_load_with_every_protocol(tmp_path, protocol):
    p = tmp_path / "f.pkl"
    p.write_bytes(pickle.dumps(_payload(), protocol=protocol))
    _same(load(p), _payload())


@pytest.mark.parametrize("spelling", [b"numpy.core.", b"numpy._core."])
def test_both_numpy_module_spellings_load(tmp_path, spelling):
    """numpy 1.x writes numpy.core.multiarray, numpy 2.x numpy._core.multiarray: protocol 2
    names them as text, so one file of each is made by swapping the spelling."""
    raw = pickle.dumps(_payload(), protocol=2)
    assert b"numpy._core." in raw or b"numpy.core." in raw
    raw = raw.replace(b"numpy._core.", b"numpy.core.").replace(b"numpy.core.", spelling)
    assert spelling + b"multiarray\n_reconstruct" in raw
    p = tmp_path / "f.pkl"
    p.write_bytes(raw)
    _same(load(p), _payload())


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "aligned_50.pkl"
    p.write_bytes(pickle.dumps({"train": {"vision": _Marker(marker)}}))
    assert b"system" in p.read_bytes()
    with pytest.raises(DataError, match=rf"^{p}: refused to load the global (posix|os)\.system that "
                                        r"the pickle names \(a pickle can run code when loaded\)"):
        load(p)
    with pytest.raises(DataError, match="refused to load the global"):
        MMSADataset(p)  # the reader goes through it
    assert not marker.exists()
    pickle.loads(p.read_bytes())  # the planted payload works with plain pickle: the test can fail
    assert marker.exists()


@pytest.mark.parametrize("module, name, hint", [
    ("torch._utils", "_rebuild_tensor_v2", "return_type='np'"),
    ("builtins", "eval", "only numpy arrays"),
    ("numpy", "load", "only numpy arrays"),
    ("collections", "namedtuple", "only numpy arrays"),
])
def test_other_globals_are_refused_by_name(tmp_path, module, name, hint):
    p = tmp_path / "f.pkl"
    p.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")  # call module.name()
    with pytest.raises(DataError, match=rf"global {module}\.{name} that .*{hint}"):
        load(p)


def test_unreadable_files_are_one_line(tmp_path):
    p = tmp_path / "f.pkl"
    p.write_bytes(pickle.dumps(_payload())[:40])
    with pytest.raises(DataError, match=r"f.pkl: not a readable pickle \("):
        load(p)
    with pytest.raises(DataError, match="file does not exist"):
        load(tmp_path / "nothing.pkl")
    with pytest.raises(DataError, match="is a folder"):
        load(tmp_path)
