"""
The default model mirror (issue #21): empty and explicit, not a repository
that does not exist; a registered model then says how to add a mirror.
"""

import hashlib

import pytest

from astro_dustml import Conf, conf
from astro_dustml.exceptions import ModelNotAvailableError
from astro_dustml.model.registry import download_models, get_model, list_models


def _registry():
    content = b'{"name": "remote"}'
    return {'models': {'remote': {'description': 'test model', 'files': {
        'model.json': hashlib.sha256(content).hexdigest()}}}}


def test_default_mirror_list_is_empty_and_says_how_to_add_one():
    item = Conf.model_urls
    assert list(item.defaultvalue) == []
    assert 'astro_dustml.cfg' in item.description and 'conf.model_urls' in item.description


def test_registered_model_without_mirror_says_how_to_add_one(download_cache):
    with conf.set_temp('model_urls', []):
        table = list_models(registry=_registry())
        row = table[list(table['name']).index('remote')]
        assert not row['cached']
        for call in (lambda: download_models(['remote'], registry=_registry()),
                     lambda: get_model('remote', registry=_registry())):
            with pytest.raises(ModelNotAvailableError) as info:
                call()
            message = str(info.value)
            assert "'remote'" in message and 'no model mirror is configured' in message
            assert "conf.model_urls = ['https://" in message
            assert 'model_urls = https://' in message and 'astro_dustml.cfg' in message
        # the bundled default model needs no mirror
        assert get_model().card['name'] == conf.default_model
