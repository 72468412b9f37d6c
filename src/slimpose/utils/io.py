"""Atomic file writing and readable loading errors.

Everything slimpose writes (checkpoints, result files, reports) goes through these helpers so
that an interrupted run never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator


class SlimposeInputError(ValueError):
    """A user-supplied file or record is missing, malformed or inconsistent.

    The message always names the file (and the record, where there is one).
    """


def unwrap_worker_error(error: BaseException) -> BaseException:
    """The original ``SlimposeInputError`` of an error a DataLoader worker re-raised ("Caught
    SlimposeInputError in DataLoader worker process 0. Original Traceback ..."), else ``error`` itself."""
    text = str(error)
    marker = "SlimposeInputError: "
    if not isinstance(error, SlimposeInputError) or not text.startswith("Caught ") or marker not in text:
        return error
    return SlimposeInputError(text.rsplit(marker, 1)[1].strip())


def unwrapped_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """The batches of ``loader``; a SlimposeInputError raised in a DataLoader worker arrives as the original
    error (its own message naming the file), not wrapped in "Caught ... in DataLoader worker process 0"."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except SlimposeInputError as e:
            raise unwrap_worker_error(e) from None
        yield batch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically, with the mode a
    plain ``open`` would give (``mkstemp`` makes it 0600: data sets and checkpoints should stay readable by
    the group / others as the umask allows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# ``atomic_path``'s temporary files: ".NAME.PID-XXXXXXXX.tmp" (older versions: ".NAME.XXXXXXXX.tmp", no PID)
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]{8}\.tmp$")
STALE_TMP_MIN_AGE_S = 60.0  # never remove a younger temporary file (a writer on another machine may own it)
STALE_TMP_NO_PID_AGE_S = 3600.0  # a temporary file without a PID is stale after an hour
# the files slimpose writes into the folders it sweeps (a run's work dir, a synthetic split's image folder):
# an old temporary file without a PID is only taken for one of ours when it is of one of these
_OWN_NAMES = re.compile(r"^(?:last\.pth|best\.pth|config\.json|log\.jsonl|metrics_.+\.json|results_.+\.json"
                        r"|predictions_.+\.npz|\d{9}\.jpg)$")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def remove_stale_tmp(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete the temporary files ``atomic_path`` left in ``folder`` when its process was killed (those of
    the target ``name`` only, if given): files of its naming pattern whose process no longer runs (or, for
    files without a PID, the pattern of older versions, older than an hour and, without ``name``, of a file
    slimpose writes there: ``last.pth``, ``best.pth``, ``config.json``, ``log.jsonl``, ``metrics_*.json``,
    ``results_*.json``, ``predictions_*.npz``, 9-digit ``.jpg`` images), at least a minute old. Returns the
    removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    pattern = f".{glob.escape(name)}.*.tmp" if name else ".*.tmp"
    for tmp in folder.glob(pattern):
        m = _TMP_NAME.match(tmp.name)
        if m is None or (name is not None and m.group("name") != name):
            continue
        try:
            age = now - tmp.stat().st_mtime
        except OSError:
            continue
        pid = m.group("pid")
        if pid is None and name is None and not _OWN_NAMES.match(m.group("name")):
            continue  # ".X.XXXXXXXX.tmp" of a file slimpose does not write: another program's
        stale = age >= STALE_TMP_NO_PID_AGE_S if pid is None else not _process_alive(int(pid))
        if stale and age >= STALE_TMP_MIN_AGE_S:
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


def _read_umask() -> int:
    mask = os.umask(0o022)  # read once, at import (os.umask can only be read by setting it)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def torch_save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Load JSON, turning a missing file or a syntax error into a SlimposeInputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"{what} not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise SlimposeInputError(f"{path}: malformed JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise SlimposeInputError(f"{path}: not a UTF-8 text file ({e})") from None
