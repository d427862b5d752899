"""Random forests as plain node arrays: export from scikit-learn and prediction."""

import numpy as np

_CHUNK = 20000


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


def _forest_predict(forest, X):
    """Mean of the trees' leaf values, with sklearn's rules (float32 inputs, NaN routing)."""
    X = np.asarray(X, dtype=np.float32)
    n_trees = len(forest['roots'])
    out = np.empty(len(X))
    for start in range(0, len(X), _CHUNK):
        Xc = X[start:start + _CHUNK]
        rows = np.arange(len(Xc))[None, :]
        node = np.repeat(forest['roots'][:, None], len(Xc), axis=1)
        while True:
            feat = forest['feature'][node]
            inner = feat >= 0
            if not inner.any():
                break
            x = Xc[rows, np.where(inner, feat, 0)].astype(np.float64)
            go_left = np.where(np.isnan(x), forest['missing_left'][node],
                               x <= forest['threshold'][node])
            child = np.where(go_left, forest['left'][node], forest['right'][node])
            node = np.where(inner, child, node)
        out[start:start + _CHUNK] = forest['value'][node].sum(axis=0) / n_trees
    return out
