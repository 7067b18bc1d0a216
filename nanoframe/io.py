"""File I/O at the bottom of the library: safetensors files and atomic writes. (`save`/`load` of
Tensors, Modules and containers, torch.save / torch.load without pickle, build on this in
nanoframe/serialization.py.)

Public API
----------
``save_safetensors(tensors, path, metadata=None)``
    Write a flat ``{name: array}`` dict (plus optional ``{str: str}`` metadata)
    as a standard safetensors file.
``load_safetensors(path) -> dict[str, np.ndarray]``
    Read the tensors of a safetensors file (written by anyone).
``load_safetensors_metadata(path) -> dict[str, str]``
    Read only the ``__metadata__`` of a safetensors file ({} if absent).
``atomic_open(path, mode="wb")``, ``atomic_write_bytes``, ``atomic_write_text``
    Crash-safe writes: temp file in the same directory, fsync, ``os.replace``.

File format (https://github.com/huggingface/safetensors)::

    u64 little-endian N | N bytes UTF-8 JSON header (space padded) | data

The header maps each tensor name to ``{"dtype", "shape", "data_offsets"}``,
offsets being relative to the start of the data region, plus an optional
``"__metadata__": {str: str}``. Loading only parses JSON and copies bytes: no
code is ever executed, and every inconsistency raises ``CheckpointError`` (a
``ValueError``) naming the file.

Dtypes: F64 F32 F16 BF16 C64 I64 I32 I16 I8 U64 U32 U16 U8 BOOL.
F16 loads as ``float16``; BF16 loads as ``float32`` (exact: a bfloat16 is the
high half of a float32). BF16 cannot be written (numpy has no bfloat16).
Arrays are always returned in native byte order and own writable memory.
"""

import contextlib
import hashlib
import json
import math
import os
import secrets
import struct
from pathlib import Path

import numpy as np

from nanoframe.errors import CheckpointError, bounded

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_safetensors",
    "load_safetensors_metadata",
    "save_safetensors",
]

# safetensors dtype code -> little-endian numpy dtype used to read the bytes.
# BF16 is read as raw uint16 and widened to float32 afterwards.
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "C64": np.dtype("<c8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# numpy dtype (native order) -> code, for writing. BF16 is read-only.
_CODES = {dt.newbyteorder("="): code for code, dt in _DTYPES.items() if code != "BF16"}


def dtype_code(dtype):
    """The safetensors code that stores arrays of `dtype` ("F32"...), or None if none can."""
    return _CODES.get(np.dtype(dtype).newbyteorder("="))

# Same limit as the reference implementation: a header above 100 MB is
# rejected before anything is allocated for it.
MAX_HEADER_SIZE = 100_000_000
_METADATA_KEY = "__metadata__"

# The temp file is created with mode 0o666 and the kernel applies the umask, so
# the final file gets the usual 0o666 & ~umask without nanoframe reading (which
# means setting) the process's umask. O_BINARY: no newline translation (Windows).
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_open(path, mode="wb", encoding="utf-8"):
    """Open ``path`` for writing so that it is replaced atomically.

    Yields a file object for a temporary file in the same directory. When the
    ``with`` block exits normally the data is flushed, fsync'ed and the temp
    file is renamed onto ``path`` with ``os.replace`` (atomic on POSIX and
    Windows). If the block raises, the temp file is deleted and any previous
    file at ``path`` is left untouched. The file gets mode ``0o666 & ~umask``,
    as with ``open``.

    ``mode`` must be ``"wb"`` (binary) or ``"w"`` (text, using ``encoding``).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        tmp_name, fd = _create_temp(directory, "." + os.path.basename(path) + ".", ".tmp")
    except OSError as e:                               # e.g. a read-only folder: name the file meant
        raise OSError(e.errno, e.strerror, path) from e
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(e, OSError) and not e.filename:      # a full disk: say which file it hit
            raise OSError(e.errno, e.strerror or str(e), path) from e
        raise
    _fsync_directory(directory)


def _create_temp(directory, prefix, suffix):
    """(path, fd) of a new file in directory, opened for writing with mode 0o666 & ~umask."""
    for _ in range(100):
        name = os.path.join(directory, prefix + secrets.token_hex(6) + suffix)
        try:
            return name, os.open(name, _TEMP_FLAGS, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"atomic_open: no free temporary name in {directory}")


def _fsync_directory(directory):
    """Persist a rename by fsync'ing its directory (best effort, POSIX only)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path, data):
    """Atomically replace ``path`` with the bytes ``data``."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text, encoding="utf-8"):
    """Atomically replace ``path`` with the string ``text``."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


# --------------------------------------------------------------------------
# safetensors writing
# --------------------------------------------------------------------------


def _as_array(value):
    """Return ``value`` as an ndarray (ndarrays, ``__array__`` or ``.data``)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__array__"):
        return np.asarray(value)
    data = getattr(value, "data", None)
    if isinstance(data, np.ndarray):
        return data
    raise TypeError(f"expected an array, got {type(value).__name__}")


def _write_array(f, array):
    """Write ``array``'s bytes (already contiguous little-endian) to ``f``."""
    if array.size:
        f.write(array.reshape(-1).view(np.uint8).data)


def save_safetensors(tensors, path, metadata=None):
    """Write ``tensors`` (``{name: array}``) to ``path`` in safetensors format.

    ``metadata`` is an optional ``{str: str}`` dict stored as ``__metadata__``.
    Arrays may be non-contiguous or big-endian; they are converted. Tensors are
    laid out like the reference implementation (larger itemsize first, then by
    name), so every tensor is aligned to its itemsize. The write is atomic.
    Raises ``TypeError`` for non-str names/metadata or unsupported dtypes.
    """
    layout = _layout(tensors, metadata)
    with atomic_open(path, "wb") as f:
        _write_layout(f, *layout)


def _layout(tensors, metadata):
    """(header bytes, [(code, array)] in file order) of a safetensors file, everything checked."""
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise TypeError("metadata must be a dict mapping str to str")

    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {name!r}")
        if name == _METADATA_KEY:
            raise ValueError(f"{_METADATA_KEY!r} is reserved and cannot be a tensor name")
        array = _as_array(value)
        code = dtype_code(array.dtype)
        if code is None:
            raise TypeError(f"tensor {name!r}: unsupported dtype {array.dtype}")
        arrays[name] = (code, array)

    header = {}
    if metadata:
        header[_METADATA_KEY] = dict(metadata)
    order = sorted(arrays, key=lambda n: (-arrays[n][1].dtype.itemsize, n))
    offset = 0
    for name in order:
        code, array = arrays[name]
        end = offset + array.nbytes
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, end]}
        offset = end

    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    return header_bytes, [arrays[name] for name in order]


def _write_layout(f, header_bytes, arrays):
    f.write(struct.pack("<Q", len(header_bytes)))
    f.write(header_bytes)
    for code, array in arrays:
        _write_array(f, array.astype(_DTYPES[code], order="C", copy=False))


# --------------------------------------------------------------------------
# safetensors reading
# --------------------------------------------------------------------------


def _is_int(x):
    """True for JSON integers (``bool`` is excluded)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _reject_duplicates(pairs):
    """``json`` object hook: duplicate keys make a header ambiguous."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _read_header(f, where):
    """Parse and validate the header of the open file ``f``.

    Returns ``(entries, metadata, data_start)`` where ``entries`` is a list of
    ``(name, code, shape, begin, end)`` sorted by offset, covering the data
    region exactly. ``where`` names the file in error messages.
    """
    file_size = f.seek(0, os.SEEK_END)
    f.seek(0)
    if file_size < 8:
        raise CheckpointError(f"{where}: file is {file_size} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_HEADER_SIZE:
        raise CheckpointError(f"{where}: header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit")
    if 8 + n > file_size:
        raise CheckpointError(f"{where}: header length {n} is larger than the file ({file_size} bytes)")
    raw = f.read(n)
    if len(raw) != n:
        raise CheckpointError(f"{where}: file truncated while reading the header")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(f"{where}: header is not valid UTF-8 JSON: {bounded(e, 120)}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: header must be a JSON object, got {type(header).__name__}")

    metadata = header.pop(_METADATA_KEY, None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{where}: {_METADATA_KEY} must be an object mapping str to str")

    data_size = file_size - 8 - n
    entries = []
    for name, info in header.items():
        entries.append(_parse_entry(name, info, data_size, where))

    # The entries must tile the data region exactly: no overlap, no hole.
    entries.sort(key=lambda e: (e[3], e[4]))
    position = 0
    for name, _, _, begin, end in entries:
        if begin < position:
            raise CheckpointError(f"{where}: tensor {name!r} overlaps the previous tensor ({begin} < {position})")
        if begin > position:
            raise CheckpointError(f"{where}: hole in the data region before tensor {name!r} ({position}..{begin})")
        position = end
    if position != data_size:
        raise CheckpointError(
            f"{where}: tensors cover {position} bytes but the data region is {data_size} bytes"
        )
    return entries, metadata, 8 + n


def _parse_entry(name, info, data_size, where):
    """Validate one header entry; return ``(name, code, shape, begin, end)``."""
    what = f"{where}: tensor {bounded(repr(name), 80)}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{what}: entry must be an object")
    missing = {"dtype", "shape", "data_offsets"} - info.keys()
    if missing:
        raise CheckpointError(f"{what}: entry is missing {sorted(missing)}")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(code, str) or code not in _DTYPES:
        raise CheckpointError(f"{what}: unknown dtype {bounded(repr(code), 40)}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise CheckpointError(f"{what}: shape must be a list of non-negative ints, got {bounded(repr(shape), 80)}")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_int(o) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise CheckpointError(f"{what}: data_offsets must be [begin, end] with 0 <= begin <= end, got {bounded(repr(offsets), 80)}")
    if math.prod(max(d, 1) for d in shape) * _DTYPES[code].itemsize > np.iinfo(np.intp).max:
        raise CheckpointError(f"{what}: shape {shape} is too large")
    begin, end = offsets
    if end > data_size:
        raise CheckpointError(f"{what}: data_offsets {bounded(offsets, 80)} are beyond the data region ({data_size} bytes)")
    nbytes = math.prod(shape) * _DTYPES[code].itemsize  # Python ints: no overflow
    if end - begin != nbytes:
        raise CheckpointError(f"{what}: {end - begin} bytes stored but shape {shape} of {code} needs {nbytes}")
    return name, code, tuple(shape), begin, end


def _read_array(f, code, shape, where, name):
    """Read the next tensor from ``f`` into a fresh native-order array."""
    raw = np.empty(shape, dtype=_DTYPES[code] if code != "BOOL" else np.uint8)
    if raw.size:
        flat = raw.reshape(-1).view(np.uint8)
        if f.readinto(flat) != flat.size:
            raise CheckpointError(f"{where}: file truncated while reading tensor {name!r}")
    if code == "BF16":
        out = np.empty(shape, dtype=np.float32)
        bits = out.view(np.uint32)
        bits[...] = raw
        bits <<= 16
        return out
    if code == "BOOL":
        return raw.astype(np.bool_)  # normalises bytes other than 0/1
    if not raw.dtype.isnative:
        raw = raw.astype(raw.dtype.newbyteorder("="))
    return raw


def _load(path):
    """Read ``path``; return ``(tensors, metadata)``."""
    with open(path, "rb") as f:
        return _read_file(f, os.fspath(path))


def _read_file(f, where):
    """Read the seekable binary file ``f`` (named ``where``); return ``(tensors, metadata)``."""
    entries, metadata, data_start = _read_header(f, where)
    f.seek(data_start)
    # Entries are sorted by offset and tile the region: read sequentially.
    tensors = {name: _read_array(f, code, shape, where, name) for name, code, shape, _, _ in entries}
    return tensors, metadata


def load_safetensors(path):
    """Load all tensors of the safetensors file ``path`` as ``{name: array}``.

    The header is fully validated before any tensor data is read; any problem
    raises ``ValueError`` naming the file and the offending tensor. Returned
    arrays own their (writable) memory. Use ``load_safetensors_metadata`` for
    the ``__metadata__`` dict.
    """
    return _load(path)[0]


def load_safetensors_metadata(path):
    """Return the ``__metadata__`` dict of ``path`` ({} if absent).

    The whole header is validated (as in ``load_safetensors``) but no tensor
    data is read.
    """
    with open(path, "rb") as f:
        _, metadata, _ = _read_header(f, os.fspath(path))
    return metadata


def read_json(path, missing, error=ValueError, max_bytes=256 << 20):
    """Parse the JSON file at `path`; raise `error(missing)` when it does not exist and an error
    naming the file when it is not valid JSON, not UTF-8, nested too deeply or over `max_bytes`."""
    path = Path(path)
    if not path.is_file():
        raise error(missing)
    try:
        if path.stat().st_size > max_bytes:
            raise error(f"{path} is {path.stat().st_size:,} bytes, larger than the {max_bytes:,} a JSON file may be")
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise error(f"{path} is not valid JSON: nested too deeply") from None
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror}") from None


def file_sha256(path, chunk=1 << 20):
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def safetensors_shapes(path):
    """{name: (dtype code, shape)} of a safetensors file, from its validated header alone (no
    tensor data is read), so a loader can check shapes before it allocates anything."""
    with open(path, "rb") as f:
        entries, _, _ = _read_header(f, os.fspath(path))
    return {name: (code, shape) for name, code, shape, _, _ in entries}
