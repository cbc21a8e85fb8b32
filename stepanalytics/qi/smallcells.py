"""The small-cell rule and the exact test behind complementary suppression.

Shared by the two-way tables of :mod:`stepanalytics.qi.crosstab` and the
tidy tables of :mod:`stepanalytics.qi.margins`; the public entry points live
in :mod:`stepanalytics.qi.suppression`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stepanalytics.errors import UsageError

DEFAULT_THRESHOLD = 10
#: What a suppressed cell shows in a rendered table (same mark for primary
#: and complementary cells, so the mark itself does not tell which is small).
SUPPRESSED_MARK = "*"
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
#: A linear combination of hidden cells counts as known when it differs from
#: its projection on the published equations by less than this.
TOLERANCE = 1e-9


def small_cells(counts: npt.ArrayLike, *, threshold: int = DEFAULT_THRESHOLD) -> BoolArray:
    """True where a count lies in ``1..threshold`` (a cell to suppress).

    Examples
    --------
    >>> small_cells([0, 1, 10, 11]).tolist()
    [False, True, True, False]
    """
    x = np.asarray(counts, dtype=float)
    if threshold < 1:
        raise UsageError("threshold must be at least 1.")
    return (x >= 1) & (x <= threshold)


def determined(equations: npt.ArrayLike, combinations: npt.ArrayLike) -> BoolArray:
    """Which linear combinations of unknowns a linear system pins down exactly.

    Parameters
    ----------
    equations : array_like, shape (m, k)
        One row per published equation, restricted to the k hidden cells
        (the published cells are known and move to the right-hand side).
    combinations : array_like, shape (f, k)
        Combinations a reader might want: unit vectors for single cells,
        0/1 vectors for the total of a group of cells.

    Returns
    -------
    ndarray of bool, shape (f,)
        True where the combination lies in the row space of ``equations``,
        i.e. follows from the published values whatever the hidden cells are.

    Notes
    -----
    The row space is spanned by the right singular vectors of ``equations``
    with non-zero singular values (as R ``MASS::Null`` uses the QR
    decomposition for the complement).  A combination ``a`` is determined
    iff ``a`` equals its projection on that space.

    Examples
    --------
    >>> # x1 + x2 = 5 fixes the total, not the cells.
    >>> determined([[1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]]).tolist()
    [False, True]
    """
    a = np.atleast_2d(np.asarray(combinations, dtype=float))
    system = np.asarray(equations, dtype=float)
    if system.size == 0:
        return np.all(np.abs(a) < TOLERANCE, axis=1)
    system = np.atleast_2d(system)
    _, singular, vt = np.linalg.svd(system, full_matrices=False)
    rank = int(np.sum(singular > singular.max() * max(system.shape) * np.finfo(float).eps))
    basis = vt[:rank]
    residual = a - (a @ basis.T) @ basis
    scale = np.maximum(np.linalg.norm(a, axis=1), 1.0)
    return np.asarray(np.linalg.norm(residual, axis=1) < TOLERANCE * scale)
