"""
Hashes and plain names: the two checks the registry and model files share.

`_sha256` of a file (streamed) and `_check_plain_name` (a model or file name
that cannot leave its folder), used by ``model.registry`` when it fetches
and verifies models and by ``model._persistence`` when it saves and loads
them.

Uses the standard library only.
"""

import hashlib
import re

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
