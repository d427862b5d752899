"""
Tree ensembles as plain node arrays: export and compiled inference.

Both kinds of tree the model uses end up in one form, `_Trees`: the random
forests of the mean (exported from scikit-learn, saved in ``.npz``) and the
xgboost boosters of the uncertainty (read from their own JSON dump at load
time).  `_sum_leaves` walks them in compiled code (numba, no GIL) tree by tree
over tiles of rows, so that one tree stays in cache while it serves many
rows; callers spread row blocks over threads.

Split rules are kept exactly: inputs are float32, as scikit-learn and xgboost
both use, and each threshold is stored as the float32 ``c`` for which
``x <= c`` picks the same side as the library's own test (scikit-learn's
``x <= t`` with a float64 ``t``; xgboost's ``x < t`` with a float32 ``t``),
so predictions equal the libraries' own to rounding of the final sum.
A NaN input follows the node's missing-value branch.
"""

import json
from dataclasses import dataclass

import numba
import numpy as np

# rows walked per tree before the next tree: the tile's features stay in cache
_TILE = 256
# the feature index takes the low 16 bits; this bit says NaN goes left
_NAN_LEFT = 1 << 16
_FEATURE_BITS = _NAN_LEFT - 1
# deeper trees are refused as malformed (the bundled forests stop at 14)
_MAX_DEPTH = 64


@dataclass(frozen=True)
class _Trees:
    """
    Flat node arrays of many trees, in the form the compiled walk wants.

    Each tree's nodes are stored breadth first with the two children of a
    node side by side (the right child is ``left + 1``), so the walk loads
    one child index, and a node's feature carries its NaN rule in one word:
    four loads a step.  A tree's top levels share cache lines.  A leaf points
    to itself (a threshold of +inf, NaN to the left), so every row of a tree
    takes exactly ``depth`` steps, without a branch to test for leaves.
    """

    roots: np.ndarray  # int64, first node of each tree
    depth: np.ndarray  # int64, depth of each tree
    feature: np.ndarray  # int32: the feature, plus _NAN_LEFT where NaN goes left
    threshold: np.ndarray  # float32: go left when x <= threshold
    left: np.ndarray  # int32; the right child is left + 1
    value: np.ndarray  # float64, the leaf values

    @classmethod
    def from_arrays(cls, *, roots, feature, threshold, left, right, missing_left, value):
        """From node arrays with ``feature < 0`` and children ``-1`` at leaves."""
        feature = np.asarray(feature, dtype=np.int32)
        n = len(feature)
        roots = np.asarray(roots, dtype=np.int64)
        left, right = (np.asarray(a, dtype=np.int64) for a in (left, right))
        inner = feature >= 0
        # a malformed file must not send the compiled walk out of bounds
        if not (len(threshold) == len(value) == len(missing_left) == len(left)
                == len(right) == n and len(roots) and roots[0] == 0
                and np.all(feature < _NAN_LEFT)
                and np.all(np.diff(roots) > 0) and roots[-1] < n
                and np.all((left[inner] > 0) & (left[inner] < n) & (right[inner] > 0)
                           & (right[inner] < n))):
            raise ValueError('the tree node arrays are inconsistent')
        tree = np.repeat(np.arange(len(roots)), np.diff(np.append(roots, n)))
        # breadth first over all trees at once, children in pairs
        levels, frontier = [], roots
        seen = np.zeros(n, dtype=bool)
        for _ in range(_MAX_DEPTH + 1):
            if np.any(seen[frontier]) or len(np.unique(frontier)) < len(frontier):
                raise ValueError('the tree node arrays are not trees')
            seen[frontier] = True
            levels.append(frontier)
            frontier = frontier[inner[frontier]]
            if not len(frontier):
                break
            children = np.column_stack([left[frontier], right[frontier]])
            if np.any(tree[children] != tree[frontier, None]):
                raise ValueError('the tree node arrays are not trees')
            frontier = children.ravel()
        else:
            raise ValueError(f'a tree is deeper than {_MAX_DEPTH} levels')
        order = np.concatenate(levels)  # nodes no root reaches are left out
        level = np.repeat(np.arange(len(levels)), [len(f) for f in levels])
        # tree by tree (each still breadth first, siblings still side by side)
        sort = np.argsort(tree[order], kind='stable')
        order, level = order[sort], level[sort]
        new = np.zeros(n, dtype=np.int64)
        new[order] = np.arange(len(order))
        leaf = ~inner[order]
        nan_left = np.asarray(missing_left, dtype=bool)[order] | leaf
        return cls(roots=new[roots], depth=np.maximum.reduceat(level, new[roots]),
                   feature=(np.where(leaf, 0, feature[order]) + _NAN_LEFT * nan_left).astype(
                       np.int32),
                   threshold=np.where(leaf, np.inf, np.asarray(threshold)[order]).astype(
                       np.float32),
                   left=np.where(leaf, np.arange(len(order)), new[left[order]]).astype(
                       np.int32),
                   value=np.asarray(value, dtype=np.float64)[order])

    @property
    def n_trees(self):
        return len(self.roots)

    @classmethod
    def concatenate(cls, parts):
        offsets = np.cumsum([0] + [len(p.feature) for p in parts[:-1]])

        def joined(key, shift=False):
            return np.concatenate([getattr(p, key) + (o if shift else 0)
                                   for p, o in zip(parts, offsets)])

        return cls(roots=joined('roots', True), depth=joined('depth'),
                   feature=joined('feature'), threshold=joined('threshold'),
                   left=joined('left', True).astype(np.int32), value=joined('value'))

    def sum_leaves(self, X):
        """Sum over trees of the leaf each row of ``X`` (float32, C order) reaches."""
        out = np.zeros(len(X))
        _sum_leaves(np.ascontiguousarray(X, dtype=np.float32), self.roots, self.depth,
                    self.feature, self.threshold, self.left, self.value, out)
        return out


def _float32_at_most(t):
    """The largest float32 <= ``t`` (float64): for float32 x, x <= t iff x <= it."""
    t32 = np.asarray(t, dtype=np.float64).astype(np.float32)
    return np.where(t32.astype(np.float64) > t, np.nextafter(t32, np.float32(-np.inf)), t32)


def _export_forest(forest):
    """Concatenate the trees of a fitted sklearn forest into flat arrays."""
    trees = [est.tree_ for est in forest.estimators_]
    sizes = np.array([t.node_count for t in trees])
    roots = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    left, right, feature, threshold, value, missing_left = [], [], [], [], [], []
    for root, t in zip(roots, trees):
        leaf = t.children_left < 0
        left.append(np.where(leaf, -1, t.children_left + root))
        right.append(np.where(leaf, -1, t.children_right + root))
        feature.append(np.where(leaf, -1, t.feature))
        threshold.append(t.threshold)
        value.append(t.value[:, 0, 0])
        mgl = getattr(t, 'missing_go_to_left', np.zeros(t.node_count, dtype=np.uint8))
        missing_left.append(mgl)
    return {'roots': roots.astype(np.int64),
            'left': np.concatenate(left).astype(np.int32),
            'right': np.concatenate(right).astype(np.int32),
            'feature': np.concatenate(feature).astype(np.int16),
            'threshold': np.concatenate(threshold).astype(np.float64),
            'value': np.concatenate(value).astype(np.float64),
            'missing_left': np.concatenate(missing_left).astype(bool)}


def _forest_trees(forest):
    """`_Trees` of exported forest arrays (sklearn's rule ``x <= t``, t in float64)."""
    return _Trees.from_arrays(
        roots=forest['roots'], feature=forest['feature'],
        threshold=_float32_at_most(forest['threshold']), left=forest['left'],
        right=forest['right'], missing_left=forest['missing_left'], value=forest['value'])


def _booster_arrays(booster):
    """
    Node arrays of an xgboost booster's numeric-split trees, in the form of
    `_export_forest` (children ``-1`` at leaves, go left when ``x <= threshold``),
    from the booster's JSON dump; a leaf's value is the tree's own, without
    the base score.
    """
    # parse floats straight to float32: xgboost writes float32 that round-trip
    model = json.loads(booster.save_raw('json'), parse_float=np.float32)
    trees = model['learner']['gradient_booster']['model']['trees']
    roots = np.cumsum([0] + [len(t['left_children']) for t in trees[:-1]])
    arrays = {k: [] for k in ('left', 'right', 'feature', 'threshold', 'value',
                              'missing_left')}
    for root, tree in zip(roots, trees):
        if any(tree.get('split_type', [])) or tree.get('categories_nodes'):
            raise ValueError('categorical splits are not supported')
        left = np.asarray(tree['left_children'], dtype=np.int64)
        leaf = left < 0
        cond = np.asarray(tree['split_conditions'], dtype=np.float32)
        arrays['left'].append(np.where(leaf, -1, left + root))
        arrays['right'].append(np.where(leaf, -1, np.asarray(tree['right_children']) + root))
        arrays['feature'].append(np.where(leaf, -1, tree['split_indices']))
        # xgboost goes left when x < t: for float32 x that is x <= the float32 below t
        arrays['threshold'].append(np.where(leaf, -2.0, np.nextafter(cond, np.float32(-np.inf))))
        # a leaf's value is its split condition in xgboost's JSON
        arrays['value'].append(np.where(leaf, cond, 0.0))
        arrays['missing_left'].append(np.asarray(tree['default_left'], dtype=bool) & ~leaf)
    dtypes = {'left': np.int32, 'right': np.int32, 'feature': np.int32,
              'threshold': np.float64, 'value': np.float64, 'missing_left': bool}
    return {'roots': roots.astype(np.int64),
            **{k: np.concatenate(v).astype(dtypes[k]) for k, v in arrays.items()}}


def _booster_trees(booster):
    """`_Trees` of an xgboost booster's numeric-split trees (xgboost's rule ``x < t``)."""
    return _Trees.from_arrays(**_booster_arrays(booster))


@numba.njit(inline='always')
def _step(X, i, node, feature, threshold, left):
    # the child that row i takes: picked by arithmetic, not by a branch
    f = feature[node]
    x = X[i, f & _FEATURE_BITS]
    go_left = (x <= threshold[node]) | ((x != x) & (f >= _NAN_LEFT))
    return left[node] + 1 - np.int32(go_left)


def _compiled(func):
    """Compile without the GIL, cached on disk where numba finds a writable folder."""
    try:
        return numba.njit(nogil=True, cache=True)(func)
    except RuntimeError:  # no cache folder: compile once per process instead
        return numba.njit(nogil=True)(func)


@_compiled
def _sum_leaves(X, roots, depth, feature, threshold, left, value, out):
    # Eight rows walk a tree side by side without branches, in eight
    # variables the compiler keeps in registers: their independent chains of
    # loads overlap, where one row alone waits on every load and mispredicts
    # half the turns (the walk is 2.5x faster so, even with every row taking
    # the tree's full depth).
    n = X.shape[0]
    for start in range(0, n, _TILE):
        stop = min(start + _TILE, n)
        for t in range(roots.shape[0]):
            root = roots[t]
            i = start
            while i + 8 <= stop:
                a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = root
                for _ in range(depth[t]):
                    a0 = _step(X, i, a0, feature, threshold, left)
                    a1 = _step(X, i + 1, a1, feature, threshold, left)
                    a2 = _step(X, i + 2, a2, feature, threshold, left)
                    a3 = _step(X, i + 3, a3, feature, threshold, left)
                    a4 = _step(X, i + 4, a4, feature, threshold, left)
                    a5 = _step(X, i + 5, a5, feature, threshold, left)
                    a6 = _step(X, i + 6, a6, feature, threshold, left)
                    a7 = _step(X, i + 7, a7, feature, threshold, left)
                out[i] += value[a0]
                out[i + 1] += value[a1]
                out[i + 2] += value[a2]
                out[i + 3] += value[a3]
                out[i + 4] += value[a4]
                out[i + 5] += value[a5]
                out[i + 6] += value[a6]
                out[i + 7] += value[a7]
                i += 8
            while i < stop:
                a = root
                for _ in range(depth[t]):
                    a = _step(X, i, a, feature, threshold, left)
                out[i] += value[a]
                i += 1


def _forest_predict(forest, X):
    """Mean of the trees' leaf values, with sklearn's rules (float32 inputs, NaN routing)."""
    trees = forest if isinstance(forest, _Trees) else _forest_trees(forest)
    return trees.sum_leaves(X) / trees.n_trees
