"""
Hashes, plain names and safe replacement: what the writers of files share.

`_sha256` of a file (streamed) and `_check_plain_name` (a model or file name
that cannot leave its folder), used by ``model.registry`` when it fetches
and verifies models and by ``model._persistence`` when it saves and loads
them.

`_replacing_file` and `_replacing_folder` are the one rule for
``overwrite=True`` (`~astro_dustml.model.DustModel.save`,
`~astro_dustml.maps.write_dust_maps`,
`~astro_dustml.training.build_training_table` and the command line): never
delete what the package did not write.  The new output is written to a
temporary path beside the old one and swapped in only once it is complete,
so that an interrupted write leaves the old output as it was; an old file is
replaced or removed only when it is verifiably one the package wrote.

Uses the standard library only.
"""

import hashlib
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

_PLAIN_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]*')


def _check_plain_name(name, *, what):
    """Raise ValueError unless ``name`` is a plain file (or model) name."""
    if not (isinstance(name, str) and _PLAIN_NAME.fullmatch(name) and '..' not in name):
        raise ValueError(
            f'{what} {name!r} is not a plain file name (letters, digits, ".", "_", "-"; '
            'no folder part, no "..", not absolute): every model file must sit directly '
            'in the model folder. Fix the registry or model card.')
    return name


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _partial_name(path):
    """A fresh hidden name beside ``path`` that ends like it (``.fits.gz`` stays)."""
    return path.with_name(f'.partial-{secrets.token_hex(4)}-{path.name}')


def _check_replaceable(path, *, overwrite, is_ours, what):
    """
    ``path`` as a Path, if a new output may be written there (see `_replacing_file`).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False, or it is not ours.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f'{path} exists; pass overwrite=True to replace it.')
        if path.is_dir() or not is_ours(path):
            kind = 'a folder' if path.is_dir() else 'a file'
            raise FileExistsError(
                f'{path} exists and is {kind} that was not written as {what}: it is left '
                'alone, even with overwrite (the package replaces only its own outputs). '
                'Move or delete it yourself, or write to another path.')
    return path


@contextmanager
def _replacing_file(path, *, overwrite, is_ours, what):
    """
    Write a new file in place of ``path``, safely.

    Yields a temporary path beside ``path`` to write to; when the block ends
    without an error, that file replaces ``path`` atomically (``os.replace``),
    and if the block wrote nothing, an old ``path`` is removed.  On an error
    the temporary file goes and ``path`` is untouched.

    Parameters
    ----------
    path : path-like
        The output.
    overwrite : bool
        Whether an existing ``path`` may be replaced at all.
    is_ours : callable
        ``is_ours(path)`` is True when the existing file is verifiably one
        this package wrote (e.g. its header says so); any other existing file
        is never replaced.
    what : str
        What the package writes there, for the message (``'a dust-map file
        of write_dust_maps'``).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False, or it is not ours.
    """
    path = _check_replaceable(path, overwrite=overwrite, is_ours=is_ours, what=what)
    partial = _partial_name(path)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if partial.exists():
        os.replace(partial, path)
    elif path.exists():
        path.unlink()


@contextmanager
def _replacing_folder(path, *, card, owned):
    """
    Write a new set of files into the folder ``path``, safely.

    Yields a new temporary folder beside ``path`` to write every file into,
    the card ``card`` among them.  When the block ends without an error the
    files are moved into ``path`` (created if needed), the card last; then
    the files of the old set that the new one lacks are removed, but only
    those in ``owned(path)`` -- computed before anything moves: the files a
    verified card of this package wrote, each matching its hash.  Every
    other file of the folder stays.  On an error the temporary folder goes
    and ``path`` is untouched: the old set is still complete.
    """
    path = Path(path).resolve()  # the temporary folder sits beside the real one
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_name(path)
    partial.mkdir()  # the usual permissions, unlike tempfile.mkdtemp's
    try:
        yield partial
        if not path.exists():
            os.replace(partial, path)
            return
        stale = set(owned(path))
        new = sorted(p.name for p in partial.iterdir())
        # no window in which the old card vouches for files that have changed
        (path / card).unlink(missing_ok=True)
        for name in new:
            if name != card:
                os.replace(partial / name, path / name)
        os.replace(partial / card, path / card)
        for name in sorted(stale - set(new)):
            (path / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
