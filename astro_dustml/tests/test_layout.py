"""The package layout: imports go down the pipeline, never in a circle; old paths still work."""

import ast
import importlib
from pathlib import Path

import pytest
from astropy.utils.exceptions import AstropyDeprecationWarning

import astro_dustml
from astro_dustml._moved import MOVED

PACKAGE = Path(astro_dustml.__file__).parent
# The stages in the order data flows through them (docs/architecture.rst)
LAYERS = ['_moved', 'bands', 'exceptions', '_checks', 'imaging', 'sed', 'model', 'farinfrared',
          'maps', 'training', 'datasets', 'visualization', '_cli_args', '_cli_training', 'cli']


def _modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        if 'tests' in parts or parts[-1] == 'conftest':
            continue
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        yield name, path


def _is_module(name):
    path = PACKAGE.parent.joinpath(*name.split('.'))
    return path.with_suffix('.py').exists() or (path / '__init__.py').exists()


def import_graph():
    """``{module: modules it imports}`` from the source, deferred imports included."""
    graph = {}
    for name, path in _modules():
        package = name if path.name == '__init__.py' else name.rpartition('.')[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            if module.split('.')[0] != 'astro_dustml':
                continue
            for alias in node.names:
                child = f'{module}.{alias.name}'
                deps.add(child if _is_module(child) else module)
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        for dep in list(deps):
            parts = dep.split('.')
            deps.update('.'.join(parts[:k]) for k in range(2, len(parts)))
        deps -= {name, 'astro_dustml'}  # the top level imports nothing eagerly
        deps -= {d for d in deps if name.startswith(d + '.')}  # its own parent packages
        graph[name] = deps
    return graph


def _layer(module):
    parts = module.split('.')
    # the top level loads its entry points lazily, from above everything
    return LAYERS.index(parts[1]) if len(parts) > 1 else len(LAYERS)


def test_graph_sees_known_edges():
    graph = import_graph()
    assert 'astro_dustml.imaging.io' in graph['astro_dustml.maps.estimate']
    assert 'astro_dustml.model' in graph['astro_dustml.training.fitting']
    assert 'astro_dustml.imaging' in graph['astro_dustml.sed.tables']  # via imaging.prepare


def test_no_import_cycle():
    graph = import_graph()
    state = {}

    def visit(module, path):
        state[module] = 'open'
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 'open':
                cycle = path[path.index(dep):] + [dep]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 'done'

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_imports_go_down_the_pipeline():
    graph = import_graph()
    assert {m.split('.')[1] for m in graph if '.' in m} <= set(LAYERS)
    upward = sorted(f'{m} -> {d}' for m, deps in graph.items() for d in deps
                    if _layer(d) > _layer(m))
    assert not upward


@pytest.mark.parametrize('old', sorted(MOVED))
def test_old_module_paths_forward_with_a_warning(old):
    with pytest.warns(AstropyDeprecationWarning, match=f'astro_dustml.{MOVED[old][0]}'):
        module = importlib.import_module(f'astro_dustml.{old}')
    try:
        assert module.__all__
        for name in module.__all__:
            new = next(importlib.import_module(f'astro_dustml.{m}') for m in MOVED[old]
                       if name in importlib.import_module(f'astro_dustml.{m}').__all__)
            assert getattr(module, name) is getattr(new, name)
    finally:
        del importlib.sys.modules[f'astro_dustml.{old}']
