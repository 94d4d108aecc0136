"""File helpers: argument checks and atomic writes (temp file + rename)."""

import contextlib
import json
import os
import shutil
import sys
import tempfile


def _fspath(path, arg_name):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"Expected `{arg_name}` to be a str or os.PathLike. "
            f"Received: {arg_name} of type {type(path).__name__}"
        )
    return os.fspath(path)


def check_output_path(path, arg_name="path"):
    """Checks that `path` can be written: its folder exists and it is no folder.

    Returns:
        `path` as a `str`.
    """
    path = _fspath(path, arg_name)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(
            f"Expected the folder of `{arg_name}` to exist. "
            f"Received: {arg_name}={path!r} (folder {folder!r} does not exist)"
        )
    if os.path.isdir(path):
        raise ValueError(
            f"Expected `{arg_name}` to be a file path, not a folder. "
            f"Received: {arg_name}={path!r}"
        )
    return path


def check_output_dir(out_dir, arg_name="out_dir"):
    """Checks that `out_dir` is a folder or can be made: its parent exists.

    Returns:
        `out_dir` as a `str`.
    """
    out_dir = _fspath(out_dir, arg_name)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(
            f"Expected `{arg_name}` to be a folder. Received: {arg_name}={out_dir!r} "
            "(a file)"
        )
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise ValueError(
            f"Expected the parent folder of `{arg_name}` to exist. Received: "
            f"{arg_name}={out_dir!r} (folder {parent!r} does not exist)"
        )
    return out_dir


@contextlib.contextmanager
def staged_files(paths):
    """Writes several files all-or-nothing.

    Yields a dict mapping each final path to a temporary path in the same
    folder. The caller writes the temporary files; when the block exits
    normally they are renamed into place, and on error they are deleted, so
    no final path ever holds a half-written file.
    """
    temps = {}
    try:
        for path in paths:
            fd, temp = tempfile.mkstemp(
                dir=os.path.dirname(os.path.abspath(path)),
                prefix=".tmp-" + os.path.basename(path) + "-",
            )
            os.close(fd)
            temps[path] = temp
            os.chmod(temp, 0o666 & ~_umask())
        yield temps
        for path, temp in temps.items():
            os.replace(temp, path)
        temps = {}
    finally:
        for temp in temps.values():
            with contextlib.suppress(OSError):
                os.remove(temp)


def write_atomic(path, data):
    """Writes `data` (bytes or str) to `path` through a temp file + rename."""
    with staged_files([path]) as temps:
        _write(temps[path], data)


def json_text(data, path=None):
    """Returns `data` as indented JSON; with `path`, also writes it atomically.

    Args:
        data: A JSON-compatible object.
        path: Optional file path (`str` or `os.PathLike`), checked with
            `check_output_path`. Defaults to `None`.
    """
    text = json.dumps(data, indent=2)
    if path is not None:
        write_atomic(check_output_path(path), text)
    return text


def replace_dir(temp, out_dir):
    """Moves the complete folder `temp` to `out_dir`, replacing what is there.

    Where the system can swap two folders in one step (Linux's
    `renameat2(RENAME_EXCHANGE)`), `out_dir` always holds either the old or
    the new complete folder, even if the process is killed in between; the
    old content is then deleted from `temp`'s place. Elsewhere the old
    folder is renamed aside first, and a kill between the two renames
    leaves it there (a hidden `.old-` folder beside `out_dir`).
    """
    if not os.path.exists(out_dir):
        os.rename(temp, out_dir)
        return
    if not os.listdir(out_dir):
        os.rmdir(out_dir)
        os.rename(temp, out_dir)
        return
    if _exchange(temp, out_dir):
        shutil.rmtree(temp, ignore_errors=True)  # now the old content
        return
    backup = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(out_dir)), prefix=".old-")
    os.rmdir(backup)
    os.rename(out_dir, backup)
    try:
        os.rename(temp, out_dir)
    except BaseException:
        os.rename(backup, out_dir)
        raise
    shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(out_dir, mode=None):
    """Builds a folder that replaces `out_dir` whole.

    Yields a new temporary folder beside `out_dir`. When the block exits
    normally the folder gets `mode` (default: a new folder's, after the
    umask) and replaces `out_dir` (`replace_dir`); on error it is deleted
    and `out_dir` is left as it was.
    """
    parent = os.path.dirname(os.path.abspath(out_dir))
    base = os.path.basename(os.path.abspath(out_dir))
    temp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{base}-")
    try:
        yield temp
        os.chmod(temp, 0o777 & ~_umask() if mode is None else mode)
        replace_dir(temp, out_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def write_bundle(out_dir, contents):
    """Writes the files `contents` ({file name: bytes or str}) into `out_dir`.

    When `out_dir` is missing or holds only plain files, the bundle is built
    in a temporary sibling folder, together with hard links to (or copies
    of) the other files already there, and that folder replaces `out_dir`
    whole (`replace_dir`): a kill leaves the old or the new complete
    bundle, never a mix. A folder with subfolders or symbolic links (or
    that is one) keeps its inode and gets the files renamed in one by one
    (`staged_files`): each file is complete, but a kill between two renames
    can mix two bundles.

    Returns:
        `True` if the folder was swapped whole, `False` if the files were
        renamed one by one.
    """
    existing = os.listdir(out_dir) if os.path.isdir(out_dir) else []
    if os.path.islink(out_dir) or any(
            not os.path.isfile(os.path.join(out_dir, n))
            or os.path.islink(os.path.join(out_dir, n)) for n in existing):
        created = not os.path.isdir(out_dir)
        if created:
            os.mkdir(out_dir)
        paths = {os.path.join(out_dir, f): content for f, content in contents.items()}
        try:
            with staged_files(list(paths)) as temps:
                for path, content in paths.items():
                    _write(temps[path], content)
        except BaseException:
            if created and not os.listdir(out_dir):
                os.rmdir(out_dir)
            raise
        return False
    mode = os.stat(out_dir).st_mode & 0o7777 if os.path.isdir(out_dir) else None
    with staged_dir(out_dir, mode) as temp:
        for name in existing:
            if name not in contents:
                try:
                    os.link(os.path.join(out_dir, name), os.path.join(temp, name))
                except OSError:
                    shutil.copy2(os.path.join(out_dir, name), os.path.join(temp, name))
        for name, content in contents.items():
            path = os.path.join(temp, name)
            _write(path, content)
            os.chmod(path, 0o666 & ~_umask())
    return True


def _write(path, content):
    mode = "wb" if isinstance(content, (bytes, bytearray, memoryview)) else "w"
    with open(path, mode) as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def _exchange(a, b):
    """Swaps two paths atomically (Linux renameat2 RENAME_EXCHANGE); False
    where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b),
                     rename_exchange) == 0


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
