"""
What the installation docs say about the extras is what pyproject.toml has
(issue #21): every extra and every package in it is named in install.rst,
and the tools the docs tell users to run are in an extra.
"""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def extras():
    path = ROOT / 'pyproject.toml'
    if not path.is_file():
        pytest.skip('not a checkout (no pyproject.toml)')
    extras = tomllib.loads(path.read_text())['project']['optional-dependencies']

    def names(extra, seen=()):
        out = set()
        for requirement in extras[extra]:
            name = re.match(r'[A-Za-z0-9_.\-]+', requirement).group(0).lower()
            nested = re.search(r'\[([^\]]+)\]', requirement)
            if name == 'astro_dustml' and nested:
                for sub in nested.group(1).split(','):
                    if sub.strip() not in seen:
                        out |= names(sub.strip(), (*seen, extra))
            else:
                out.add(name)
        return out

    return {extra: names(extra) for extra in extras}


def _extra_entries():
    """``{extra: description}`` of the definition list of extras in install.rst."""
    text = (ROOT / 'docs' / 'install.rst').read_text()
    entries = {}
    for match in re.finditer(r'^``(\w+)``\n((?:    .*\n)+)', text, flags=re.M):
        entries[match.group(1)] = ' '.join(match.group(2).split()).lower()
    return entries


def _mentions(description, package):
    # e.g. "sphinx-astropy", "dask (array, dataframe)"; "everything of ``test``"
    return re.search(rf'(?<![\w-]){re.escape(package)}(?![\w-])', description)


def test_install_docs_list_every_extra_and_package(extras):
    entries = _extra_entries()
    assert set(entries) == set(extras), (sorted(entries), sorted(extras))
    text = {extra: entries[extra] for extra in extras}
    for extra, packages in extras.items():
        for package in packages:
            # a package may be named through "everything of ``other``"
            via = [other for other in extras if other != extra and package in extras[other]
                   and f'``{other}``' in text[extra]]
            assert _mentions(text[extra], package) or via, (extra, package, text[extra])


def test_tools_the_docs_tell_to_run_are_in_an_extra(extras):
    texts = [(ROOT / 'README.rst').read_text()] + [
        p.read_text() for p in sorted((ROOT / 'docs').glob('*.rst'))]
    provided = set().union(*extras.values())
    for tool in ('tox', 'pytest', 'sphinx-build'):
        told = any(re.search(rf'``{tool}[ `]', text) for text in texts)
        package = {'sphinx-build': 'sphinx-astropy'}.get(tool, tool)
        if told:
            assert package in provided, f'the docs say to run {tool}; no extra installs it'
