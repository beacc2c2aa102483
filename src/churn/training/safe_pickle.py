"""Model pickles that cannot run code: an exact allow-list of what a churn model is made of, and one read.

A pickle is a small program: unpickling imports and calls whatever it names (its "globals"). A pickle naming
`pandas.read_pickle`, `numpy.load` or `joblib.load` (which unpickle another file unrestricted), `eval`,
`getattr` or `os.system` runs code. `load_model_bytes` therefore refuses, before importing it, every global
that is not one of the exact (module, qualified name) pairs in `MODEL_GLOBALS`: the classes a churn model is
made of and three array-building functions numpy and scipy pickle by reference. The list is what the
project's own models pickle, nothing more; `tests/reliability/test_model_integrity.py` builds every model
kind and checks it is complete (every global they reference is listed) and minimal (every listed pair is
referenced). A library upgrade that renames one of them makes that test fail, not a model silently load.

Models are written with the standard pickle protocol 5 (`dump_model`). Bundles and MLflow models written by
earlier versions used joblib's format, whose numpy arrays are a `NumpyArrayWrapper` object followed by the
raw array bytes. Those are read by a small reader of that layout here (numeric arrays only); joblib's and
numpy's own loading code never runs, and the two legacy globals resolve to inert stand-ins.

Loading takes bytes, not a path: `read_verified` reads the file once and checks its sha256 on those bytes,
and the same bytes are unpickled, so the file cannot be swapped between the check and the load.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from churn.errors import ChurnError

PICKLE_PROTOCOL = 5

# Every global a churn model's pickle may name, as (module, qualified name). Classes are safe to rebuild
# from pickled state; the three functions only turn values held in the pickle into arrays.
MODEL_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    # the project's own classes
    ("churn.training.model", "ChurnModel"),
    ("churn.features.registry", "Feature"),
    ("churn.preparation", "Preparation"),
    ("churn.preparation", "ColumnRule"),
    ("churn.training.calibration", "ProbabilityCalibrator"),
    ("churn.training.linear", "SplineLogit"),
    ("churn.training.linear", "_Block"),
    ("churn.training.explain", "PathExplainer"),
    ("churn.monitoring.reference", "DriftReference"),
    # library classes held by them: the booster, the logistic regression's splines, plain containers
    ("lightgbm.basic", "Booster"),
    ("sklearn.preprocessing._polynomial", "SplineTransformer"),
    ("scipy.interpolate._bsplines", "BSpline"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("numpy", "dtype"),
    # how numpy pickles an array (protocol 5) and a scalar: bytes and a dtype; object dtypes are refused
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "scalar"),
    # scipy's BSpline keeps its array namespace's `asarray` (np.array) as an attribute
    ("scipy._lib.array_api_compat.numpy._aliases", "asarray"),
})
# Named only by joblib-format pickles (bundles written before protocol 5): resolved to stand-ins below.
JOBLIB_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")
JOBLIB_GLOBALS: frozenset[tuple[str, str]] = frozenset({JOBLIB_WRAPPER, ("numpy", "ndarray")})


def dump_model(model: Any) -> bytes:
    """The model as pickle protocol 5 bytes (what bundles and MLflow models hold)."""
    return pickle.dumps(model, protocol=PICKLE_PROTOCOL)


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def read_verified(path: str | Path, sha256: str, *, label: str | None = None) -> bytes:
    """The bytes of `path`, read once, after checking they match `sha256` (ChurnError naming the file when
    they do not): unpickle these bytes, never the file again."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChurnError(f"{label or path}: cannot read the model file ({exc})") from None
    if not hmac.compare_digest(sha256_hex(data), str(sha256)):
        raise ChurnError(f"{label or path} does not match its recorded sha256 (changed or corrupted): "
                         "refusing to load it")
    return data


def refused(source: str, module: str, name: str) -> ChurnError:
    """The error for a pickle naming a global outside the allow-list."""
    return ChurnError(f"{source} is not a churn model: its pickle references {module}.{name}, which no churn "
                      "model contains; refusing to load it (it could run code)")


def load_model_bytes(data: bytes, source: str) -> Any:
    """Unpickle model bytes (protocol 5, or an earlier bundle's joblib format) with the allow-list: any other
    global raises ChurnError before it is imported. `source` names the file in errors."""
    try:
        try:
            return _ModelUnpickler(data, source).load()
        except _JoblibFormat:
            return _JoblibUnpickler(io.BytesIO(data), source).load()
    except ChurnError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken pickle is the user's file
        raise ChurnError(f"{source}: cannot load the model ({type(exc).__name__}: {exc})") from None


class _JoblibFormat(Exception):
    """The pickle names joblib's array wrapper: read it again with the joblib-format reader."""


class _ModelUnpickler(pickle.Unpickler):
    """The C unpickler with the allow-list (no Python 2 name mapping: names are checked as written)."""

    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data), fix_imports=False)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in MODEL_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == JOBLIB_WRAPPER:
            raise _JoblibFormat
        raise refused(self.source, module, name)


class _Wrapper:
    """Stand-in for joblib's NumpyArrayWrapper: receives its pickled attributes, has no behaviour."""


class _NdarrayMark:
    """Stand-in for `numpy.ndarray`, which joblib's wrapper names as the array's class: only compared, never
    the real class, which a pickle could call to allocate uninitialised memory."""


class _JoblibUnpickler(pickle._Unpickler):
    """Reads joblib's format: after each wrapper object is built, the raw array bytes that follow it. (The
    pure-Python unpickler: unlike the C one, its opcode table can be extended, as joblib's own reader does.)"""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, fh: io.BytesIO, source: str):
        super().__init__(fh, fix_imports=False)
        self.fh = fh
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == JOBLIB_WRAPPER:
            return _Wrapper
        if (module, name) == ("numpy", "ndarray"):
            return _NdarrayMark
        if (module, name) in MODEL_GLOBALS:
            return super().find_class(module, name)
        raise refused(self.source, module, name)

    def load_build(self) -> None:
        pickle._Unpickler.load_build(self)
        if type(self.stack[-1]) is _Wrapper:
            self.stack[-1] = self.read_array(self.stack[-1])

    dispatch[pickle.BUILD[0]] = load_build

    def read_array(self, w: _Wrapper) -> np.ndarray:
        """The array whose bytes follow wrapper `w` in the file (joblib writes them right after it)."""
        dtype, shape, order = getattr(w, "dtype", None), getattr(w, "shape", None), getattr(w, "order", None)
        if (not isinstance(dtype, np.dtype) or not isinstance(shape, tuple) or order not in ("C", "F")
                or getattr(w, "subclass", None) is not _NdarrayMark
                or not all(isinstance(n, int) and n >= 0 for n in shape)):
            raise ChurnError(f"{self.source}: a malformed joblib array record; refusing to load it")
        if dtype.hasobject:  # joblib would unpickle a second, nested stream: no churn model holds one
            raise ChurnError(f"{self.source}: holds an array of Python objects, which no churn model contains; "
                             "refusing to load it")
        if getattr(w, "numpy_array_alignment_bytes", None) is not None:
            pad = self.fh.read(1)  # one byte: the length of the alignment padding that follows
            self.fh.read(pad[0] if pad else 0)
        count = 1
        for n in shape:
            count *= n
        size = count * dtype.itemsize
        data = self.fh.read(size)
        if len(data) != size:
            raise ChurnError(f"{self.source}: truncated (an array's bytes end early); the file is corrupt")
        arr = np.frombuffer(data, dtype=dtype).copy()
        arr = arr.reshape(shape[::-1]).T if order == "F" else arr.reshape(shape)
        return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))
