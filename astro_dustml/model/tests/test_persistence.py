"""
Model files as an adversary would write them: names outside the folder, an
edited card, corrupt files whose hashes were re-written.  Each must give one
`ModelIntegrityError` naming the problem and the file.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from astro_dustml.exceptions import ModelIntegrityError
from astro_dustml.model import DustModel

BUNDLED = Path(__file__).parents[2] / 'data' / 'models' / 'dustpedia-global'


def _rehash_card(folder, card):
    """Write ``card`` with its content hash recomputed, as the card format documents it."""
    content = {k: v for k, v in card.items() if k != 'card_sha256'}
    text = json.dumps(content, sort_keys=True, separators=(',', ':'))
    card['card_sha256'] = hashlib.sha256(text.encode()).hexdigest()
    (folder / 'model.json').write_text(json.dumps(card, indent=2))


def _replace_file(folder, name, data):
    """Replace a model file and re-write every hash, as a careful forger would."""
    (folder / name).write_bytes(data)
    card = json.loads((folder / 'model.json').read_text())
    card['files'][name] = hashlib.sha256(data).hexdigest()
    _rehash_card(folder, card)


@pytest.fixture
def copy(tmp_path):
    if not BUNDLED.is_dir():
        pytest.skip('the default model is not bundled')
    return Path(shutil.copytree(BUNDLED, tmp_path / 'model'))


def _edit_card(folder, edit, *, rehash=True):
    card = json.loads((folder / 'model.json').read_text())
    edit(card)
    if rehash:
        _rehash_card(folder, card)
    else:
        (folder / 'model.json').write_text(json.dumps(card, indent=2))


def test_untouched_copy_loads(copy):
    model = DustModel.load(copy)
    assert model.card['name'] == DustModel.load(BUNDLED).card['name']


@pytest.mark.parametrize('name', ['../outside.npz', '/tmp/outside.npz', 'sub/outside.npz',
                                  '..', '', 'a\\..\\b.npz'])
def test_file_name_outside_folder_rejected(copy, name):
    outside = copy.parent / 'outside.npz'
    outside.write_bytes(b'secret')
    digest = hashlib.sha256(b'secret').hexdigest()
    _edit_card(copy, lambda card: card['files'].__setitem__(name, digest))
    with pytest.raises(ModelIntegrityError, match='not a plain file name'):
        DustModel.load(copy)


def test_symbolic_link_out_of_folder_rejected(copy):
    outside = copy.parent / 'outside.npz'
    shutil.move(copy / 'domain.npz', outside)
    os.symlink(outside, copy / 'domain.npz')
    with pytest.raises(ModelIntegrityError, match='outside the model folder'):
        DustModel.load(copy)


def test_edited_calibration_detected(copy):
    def scale(card):
        card['calibration']['Td']['scale'] *= 100
    _edit_card(copy, scale, rehash=False)
    with pytest.raises(ModelIntegrityError, match=r'model\.json fails its content check'):
        DustModel.load(copy)


def _garbage(n):
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize('name, data', [
    ('sigma_Td_0.ubj', _garbage(4000)),  # xgboost's own parser error
    ('sigma_Td_0.ubj', b'{"learner": {}}'),
    ('mean_Td.npz', _garbage(4000)),  # BadZipFile / pickled-data refusal
    ('mean_Td.npz', (BUNDLED / 'mean_Td.npz').read_bytes()[:5000]
     if BUNDLED.is_dir() else b''),  # truncated archive
    ('domain.npz', b''),  # EOFError
])
def test_corrupt_file_with_rewritten_hash(copy, name, data):
    _replace_file(copy, name, data)
    with pytest.raises(ModelIntegrityError, match=f'{name} is malformed'):
        DustModel.load(copy)


def test_npz_without_its_arrays(copy, tmp_path):
    np.savez(tmp_path / 'empty.npz', nothing=np.zeros(1))
    _replace_file(copy, 'domain.npz', (tmp_path / 'empty.npz').read_bytes())
    with pytest.raises(ModelIntegrityError, match='domain.npz is malformed'):
        DustModel.load(copy)


@pytest.mark.parametrize('edit, words', [
    (lambda card: card.pop('params'), r'model\.json is malformed.*params'),
    (lambda card: card['params'].__setitem__('bogus', 1), r'model\.json is malformed.*bogus'),
    (lambda card: card['files'].pop('domain.npz'), "lists no file 'domain.npz'"),
    (lambda card: card.__setitem__('files', []), 'no "files" mapping'),
    (lambda card: card.__setitem__('format_version', 2), 'format version 2'),
])
def test_malformed_card_with_rewritten_hash(copy, edit, words):
    _edit_card(copy, edit)
    with pytest.raises(ModelIntegrityError, match=words):
        DustModel.load(copy)


# -- saving over a folder: never delete what the package did not write (issue 23) --


def _contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _list_notes(card, digest):
    card['files']['notes.txt'] = digest


NOTES = b'my own notes'


@pytest.mark.parametrize('edit, rehash', [
    # the card lists the user's file with its true hash, but the card itself was edited
    (lambda card: _list_notes(card, hashlib.sha256(NOTES).hexdigest()), False),
    # a verified card, but the listed hash is not that of the user's file
    (lambda card: _list_notes(card, '0' * 64), True),
    # a card of another format version, which this version does not verify
    (lambda card: (_list_notes(card, hashlib.sha256(NOTES).hexdigest()),
                   card.__setitem__('format_version', 2)), True),
], ids=['unverified card', 'hash does not match', 'older card format'])
def test_overwrite_keeps_a_foreign_file(copy, edit, rehash):
    (copy / 'notes.txt').write_bytes(NOTES)
    _edit_card(copy, edit, rehash=rehash)
    model = DustModel.load(BUNDLED)
    model.save(copy, overwrite=True)
    assert (copy / 'notes.txt').read_bytes() == NOTES
    assert set(DustModel.load(copy).card['files']) == set(_contents(copy)) - {
        'model.json', 'notes.txt'}
    assert not [p for p in copy.parent.iterdir() if p.name.startswith('.partial-')]


def test_overwrite_removes_the_old_files_its_verified_card_wrote(copy):
    # an old model with an extra booster file, listed (with its hash) in a verified card
    extra = (copy / 'sigma_Td_0.ubj').read_bytes()
    (copy / 'sigma_Td_9.ubj').write_bytes(extra)
    _edit_card(copy, lambda card: card['files'].__setitem__(
        'sigma_Td_9.ubj', hashlib.sha256(extra).hexdigest()))
    DustModel.load(BUNDLED).save(copy, overwrite=True)
    assert not (copy / 'sigma_Td_9.ubj').exists()
    DustModel.load(copy)


class _Interrupted(Exception):
    pass


def test_interrupted_save_leaves_the_old_model(copy, monkeypatch):
    before = _contents(copy)
    old = DustModel.load(copy)
    save_npz = np.savez_compressed
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:  # the first file is written, the second fails
            raise _Interrupted('disk full')
        # unlike the old file, so that writing over it would show
        return save_npz(*args, marker=np.zeros(1), **kwargs)

    monkeypatch.setattr(np, 'savez_compressed', failing)
    with pytest.raises(_Interrupted):
        old.save(copy, overwrite=True)
    monkeypatch.undo()
    assert len(calls) == 2
    # nothing was written into the folder: the old model is complete and loads
    assert _contents(copy) == before
    assert DustModel.load(copy).card == old.card
    assert not [p for p in copy.parent.iterdir() if p.name.startswith('.partial-')]


def test_interrupted_first_save_leaves_no_folder(tmp_path, monkeypatch):
    model = DustModel.load(BUNDLED)

    def failing(*args, **kwargs):
        raise _Interrupted('disk full')

    monkeypatch.setattr(np, 'savez_compressed', failing)
    with pytest.raises(_Interrupted):
        model.save(tmp_path / 'new')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('make, words', [
    (lambda folder: (folder / 'model.json').write_text('{"name": "my config"}'),
     ['not a model card of astro_dustml', 'left alone', 'another folder']),
    (lambda folder: (folder / 'model.json').write_text('[1, 2]'),
     ['not a model card of astro_dustml']),
    (lambda folder: (folder / 'model.json').write_text('{"format_version": 3, "files": {'),
     ['not a model card of astro_dustml', 'another folder']),
], ids=['foreign model.json', 'model.json a list', 'unreadable model.json'])
def test_overwrite_refuses_a_foreign_card(tmp_path, make, words):
    folder = tmp_path / 'mine'
    folder.mkdir()
    make(folder)
    before = _contents(folder)
    with pytest.raises(FileExistsError) as info:
        DustModel.load(BUNDLED).save(folder, overwrite=True)
    for word in words:
        assert word in str(info.value)
    assert _contents(folder) == before


def test_save_to_a_file_path(tmp_path):
    (tmp_path / 'model').write_text('not a folder')
    with pytest.raises(FileExistsError, match='is a file, not a model folder'):
        DustModel.load(BUNDLED).save(tmp_path / 'model')
    assert (tmp_path / 'model').read_text() == 'not a folder'
