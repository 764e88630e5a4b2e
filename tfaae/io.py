"""Atomic file writes: write beside the target, then rename, so a reader never sees half a file."""

import contextlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path, directory=False):
    """Yields a temporary path beside `path`; on success renames it onto `path` atomically.

    Args:
        path: the final file or directory.
        directory: whether the result is a directory (an existing one is replaced).

    Yields:
        The temporary path to write to (it does not exist yet for files; it is an empty directory
        when `directory` is True).

    The result gets the permissions that `open` or `os.makedirs` would give it under the current
    umask, not the owner-only ones of a temporary directory, so that other users (a model server,
    say) can read it.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    if directory:
        tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    else:
        # The whole extension ("x.weights.h5" -> ".weights.h5"): Keras checks it.
        suffix = "." + base.lstrip(".").split(".", 1)[1] if "." in base.lstrip(".") else ""
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.tmp-", suffix=suffix, dir=parent)
        os.close(fd)
        os.unlink(tmp)
    try:
        yield tmp
        if os.path.exists(tmp):
            os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        if directory and os.path.isdir(path):
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.rename(path, os.path.join(old, "x"))
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")


def save_model(model, path):
    """Saves a Keras model (`.keras`) atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)
