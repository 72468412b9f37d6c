"""Reading the official ``.npz`` files without executing code from them.

``np.load(path, allow_pickle=True)`` (how VideoPose3D, P-STMO and their descendants read their data) runs
whatever a pickle asks for: a crafted ``data_3d_h36m.npz`` can call ``os.system``. slimpose reads an npz
member by member:

* a plain array (numeric, string, structured without objects) is read by numpy's own reader with
  ``allow_pickle=False`` (``numpy.lib.format.read_array``);
* an object array (``positions_3d``, ``positions_2d``, ``metadata``, 3DHP's ``data``) is an ``.npy`` header
  (magic ``\\x93NUMPY``, version, header length, a ``{'descr': '|O', 'fortran_order': ..., 'shape': ...}``
  literal) followed by a pickle stream of the whole ndarray (``numpy.lib.format.write_array``). Its header is
  parsed here and its pickle is read by :class:`RestrictedUnpickler`, which resolves only dicts, lists,
  tuples, strings, bytes, numbers, booleans, None (all plain pickle opcodes) and the few numpy globals an
  ndarray / dtype / scalar pickle names (``numpy.ndarray``, ``numpy.dtype``,
  ``numpy[._]core.multiarray._reconstruct`` / ``scalar``, ``numpy[._]core.numeric._frombuffer``), plus
  ``_codecs.encode`` restricted to latin-1 (how protocol-2 pickles spell bytes). Any other global is refused
  with a :class:`~slimpose.utils.io.SlimposeInputError` naming the file, the member and the global, before
  anything is called. The states BUILD hands to numpy are checked too: only plain dtypes (no structured
  fields, whose state could hide an object field numpy would then fill with file bytes taken as pointers),
  dtypes equal to a fresh one of the same type string, and object arrays whose data come as a list;
* an object member the caller did not name is refused too, and every malformed, truncated or missing file or
  member becomes a SlimposeInputError naming the file.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Collection, Iterable

import numpy as np

from slimpose.utils.io import SlimposeInputError

__all__ = ["RestrictedUnpickler", "restricted_load", "restricted_loads", "read_npy_header", "load_npz",
           "ALLOWED_GLOBALS"]

try:  # numpy >= 2 names its internals numpy._core; pickles written by numpy 1.x say numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(obj: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (``encode(str, 'latin1')``), no more."""
    if not isinstance(obj, str) or encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode is admitted only as encode(str, 'latin1'), "
                                     f"not encode({type(obj).__name__}, {encoding!r})")
    return obj.encode("latin-1")


_NUMPY_CORE = {"_reconstruct": _multiarray._reconstruct, "scalar": _multiarray.scalar}

#: ``(module, name) -> object`` handed to a pickle; anything else is refused.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(m, n): f for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n, f in _NUMPY_CORE.items()},
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "complex"): complex,
    ("__builtin__", "complex"): complex,
}


class _Refused(Exception):
    """Raised inside the unpickler; turned into a SlimposeInputError naming the source."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class _BadState(Exception):
    """A dtype or array state that numpy would accept but that could make it read raw bytes as pointers."""


def _check_dtype_state(state: Any) -> None:
    """Only plain dtypes: no structured fields or sub-arrays (numpy's state ``(version, byteorder, subarray,
    names, fields, elsize, alignment, flags[, metadata])``); the official files never use those, and a
    structured dtype's state can hide an object field (flags 0) whose bytes numpy would follow as pointers."""
    if not isinstance(state, tuple) or len(state) < 8 or state[2] is not None or state[3] is not None \
            or state[4] is not None:
        raise _BadState("a structured or sub-array dtype")


def _check_built(obj: Any) -> None:
    """After BUILD: a dtype must be exactly what its type string gives (flags, size), and an object array's
    data must have come as a list of objects, never as raw bytes."""
    if isinstance(obj, np.dtype):
        fresh = np.dtype(obj.str)
        if obj.flags != fresh.flags or obj.itemsize != fresh.itemsize or obj.hasobject != fresh.hasobject:
            raise _BadState(f"dtype {obj.str!r} with altered flags or size")


class RestrictedUnpickler(pickle._Unpickler):
    """A pickle unpickler whose ``find_class`` admits only :data:`ALLOWED_GLOBALS` (Python docs, "Restricting
    Globals"; ``persistent_load`` stays the default: refused). The admitted numpy globals are not enough on
    their own: BUILD hands ``dtype.__setstate__`` / ``ndarray.__setstate__`` a state from the file, and a
    crafted one can make numpy take raw bytes as object pointers. So this is the pure-Python unpickler with
    BUILD checked (``_check_dtype_state``, ``_check_built``, object-array data only as a list)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle API
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(module, name) from None

    def load_build(self) -> None:
        state, obj = self.stack[-1], self.stack[-2]
        if isinstance(obj, np.dtype):
            _check_dtype_state(state)
        elif isinstance(obj, np.ndarray):
            if not isinstance(state, tuple) or len(state) != 5 or not isinstance(state[2], np.dtype):
                raise _BadState("an ndarray state that is not (version, shape, dtype, fortran, data)")
            _check_built(state[2])
            if state[2].hasobject and not isinstance(state[4], list):
                raise _BadState("an object array whose data are raw bytes")
        elif not isinstance(obj, (dict, list)):
            raise _BadState(f"BUILD on a {type(obj).__name__}")
        pickle._Unpickler.load_build(self)
        _check_built(obj)

    dispatch[pickle.BUILD[0]] = load_build


def _refusal(source: str, e: _Refused) -> SlimposeInputError:
    return SlimposeInputError(
        f"{source}: refused to unpickle the global '{e.module}.{e.name}' (it could run code); only dicts, "
        "lists, tuples, strings, numbers, None and numpy arrays / dtypes / scalars are loaded from a pickle")


def restricted_load(fp: BinaryIO, source: str) -> Any:
    """Unpickle one object from ``fp`` with :class:`RestrictedUnpickler` (``encoding='latin1'`` as numpy
    does for Python-2 pickles); ``source`` names the file (and member) in errors."""
    try:
        return RestrictedUnpickler(fp, encoding="latin1").load()
    except _Refused as e:
        raise _refusal(source, e) from None
    except _BadState as e:
        raise SlimposeInputError(f"{source}: refused to unpickle {e} (numpy could read file bytes as "
                                 "pointers); only plain numpy dtypes and arrays are loaded") from None
    except SlimposeInputError:
        raise
    except Exception as e:  # truncated / corrupt streams raise many kinds of errors
        raise SlimposeInputError(f"{source}: unreadable pickle ({type(e).__name__}: {e})") from None


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    """:func:`restricted_load` on bytes."""
    return restricted_load(io.BytesIO(data), source)


def _read_exact(fp: BinaryIO, n: int, source: str, what: str) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise SlimposeInputError(f"{source}: truncated .npy ({what}: {len(data)} of {n} bytes)")
    return data


def read_npy_header(fp: BinaryIO, source: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    """Parse an ``.npy`` header (format versions 1.0, 2.0, 3.0: magic, version, little-endian header length
    of 2 or 4 bytes, a Python literal dict padded with spaces), leaving ``fp`` at the data. Returns
    ``(dtype, shape, fortran_order)`` (numpy ``lib.format``)."""
    magic = _read_exact(fp, 8, source, "magic")
    if magic[:6] != b"\x93NUMPY":
        raise SlimposeInputError(f"{source}: not an .npy array (bad magic {magic[:6]!r})")
    major, minor = magic[6], magic[7]
    if (major, minor) == (1, 0):
        (hlen,) = struct.unpack("<H", _read_exact(fp, 2, source, "header length"))
    elif (major, minor) in ((2, 0), (3, 0)):
        (hlen,) = struct.unpack("<I", _read_exact(fp, 4, source, "header length"))
    else:
        raise SlimposeInputError(f"{source}: unsupported .npy format version {major}.{minor}")
    if hlen > 1 << 16:
        raise SlimposeInputError(f"{source}: .npy header of {hlen} bytes is implausibly large")
    raw = _read_exact(fp, hlen, source, "header")
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
        if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
            raise ValueError("keys must be descr, fortran_order, shape")
        shape = tuple(int(d) for d in header["shape"])
        if any(d < 0 for d in shape) or not isinstance(header["fortran_order"], bool):
            raise ValueError("bad shape or fortran_order")
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (ValueError, SyntaxError, TypeError, UnicodeDecodeError, MemoryError, RecursionError) as e:
        raise SlimposeInputError(f"{source}: malformed .npy header ({e})") from None
    return dtype, shape, header["fortran_order"]


def _read_member(zf: zipfile.ZipFile, member: str, source: str, allow_objects: bool) -> Any:
    with zf.open(member) as fp:
        dtype, shape, _ = read_npy_header(fp, source)
        if dtype.hasobject:
            if not allow_objects:
                raise SlimposeInputError(
                    f"{source}: holds pickled Python objects (dtype object); slimpose reads only the "
                    "members it expects as objects through its restricted unpickler, and this is not one")
            obj = restricted_load(fp, source)
            if not isinstance(obj, np.ndarray) or obj.shape != shape:
                got = type(obj).__name__ if not isinstance(obj, np.ndarray) else f"shape {obj.shape}"
                raise SlimposeInputError(f"{source}: the pickle holds {got}, the header says an array of shape {shape}")
            return obj.item() if obj.shape == () else obj
    with zf.open(member) as fp:  # plain data: numpy's own reader, no pickle
        return np.lib.format.read_array(fp, allow_pickle=False)


def load_npz(path: str | os.PathLike, keys: Iterable[str] | None = None,
             object_keys: Collection[str] = (), required: Collection[str] = (),
             what: str = "npz file") -> dict[str, Any]:
    """Read the members ``keys`` (all when ``None``) of an ``.npz`` without executing code.

    Plain arrays come back as numpy arrays (``allow_pickle=False``); members in ``object_keys`` may be
    object arrays and are unpickled by :class:`RestrictedUnpickler` (a 0-d object array, what
    ``np.savez(f, key=a_dict)`` writes, comes back as the object itself: the ``.item()`` of the official
    readers). A missing ``required`` member, an object member not in ``object_keys``, a refused global and
    any corrupt or truncated content raise :class:`SlimposeInputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"{what} not found: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SlimposeInputError(f"{path}: not a readable .npz (zip) file ({e})") from None
    with zf:
        members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
        missing = [k for k in required if k not in members]
        if missing:
            raise SlimposeInputError(f"{path}: {what} lacks the key(s) {missing}; it has {sorted(members)}")
        wanted = list(members) if keys is None else [k for k in keys if k in members]
        out: dict[str, Any] = {}
        for key in wanted:
            source = f"{path} (member '{key}')"
            try:
                out[key] = _read_member(zf, members[key], source, key in object_keys)
            except SlimposeInputError:
                raise
            except Exception as e:  # zlib / CRC / EOF / numpy's ValueError on short data
                raise SlimposeInputError(f"{source}: corrupt or truncated ({type(e).__name__}: {e})") from None
    return out

