"""Fast checks on composite keys of large tables."""

from __future__ import annotations

import numpy as np
import pandas as pd


def duplicated_keys(frame: pd.DataFrame, key: tuple[str, ...]) -> np.ndarray:
    """Rows whose key occurs more than once (every copy flagged).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"p": ["a", "a", "b"], "day": [1, 1, 1]})
    >>> duplicated_keys(df, ("p", "day")).tolist()
    [True, True, False]

    Each key column is factorised to integer codes and the codes combined
    into one int64 per row, which hashes far faster than tuples of objects.
    """
    factorised = [pd.factorize(frame[c], use_na_sentinel=False) for c in key]
    sizes = [len(uniques) + 1 for _, uniques in factorised]
    if np.prod(sizes, dtype=float) > 2**62:  # would overflow int64: use tuples
        return frame.duplicated(list(key), keep=False).to_numpy()
    combined = np.zeros(len(frame), dtype=np.int64)
    for (codes, _), size in zip(factorised, sizes, strict=True):
        combined = combined * size + codes
    return pd.Series(combined).duplicated(keep=False).to_numpy()
