"""Linear algebra on many tiny matrices at once, one numpy vector per entry.

A mixed model with a random intercept and a few random slopes needs, for
every patient, the Cholesky factor of a q x q matrix (q <= ~4) and a few
solves with it.  ``np.linalg`` on a stack of shape (N, q, q) calls LAPACK once
per matrix, which costs microseconds each; here a batch is stored
*entry-major*, with shape (q, q, N) (or (q, k, N) for a stack of q x k
blocks), so that every arithmetic step is one vectorised operation over all N
patients.  For q <= 4 the Python loops below run a handful of times and each
step touches contiguous memory.

All functions take and return entry-major arrays: ``a[i, j]`` is the vector
of the (i, j) entries of the N matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating[Any]]


def cholesky(m: Array) -> Array:
    """Lower Cholesky factors of a stack of symmetric positive definite matrices.

    Parameters
    ----------
    m : ndarray, shape (q, q, N)
        Entry-major stack; only the lower triangle is read.

    Returns
    -------
    ndarray, shape (q, q, N)
        ``L`` with ``L[:, :, n] @ L[:, :, n].T == m[:, :, n]``; upper triangle zero.

    Notes
    -----
    Callers pass matrices of the form ``I + Lambda' A Lambda``, whose
    eigenvalues are all >= 1, so no pivoting or rank check is needed.

    Examples
    --------
    >>> m = np.array([[4.0, 2.0], [2.0, 3.0]])[:, :, None]
    >>> cholesky(m)[:, :, 0]
    array([[2.        , 0.        ],
           [1.        , 1.41421356]])
    """
    q = m.shape[0]
    lower = np.zeros_like(m)
    for j in range(q):
        diag = m[j, j] - np.sum(lower[j, :j] ** 2, axis=0)
        lower[j, j] = np.sqrt(diag)
        for i in range(j + 1, q):
            off = m[i, j] - np.sum(lower[i, :j] * lower[j, :j], axis=0)
            lower[i, j] = off / lower[j, j]
    return lower


def forward_solve(lower: Array, b: Array) -> Array:
    """Solve ``L x = b`` for a stack of lower-triangular ``L`` (q, q, N), ``b`` (q, k, N)."""
    q = lower.shape[0]
    x = np.empty_like(b)
    for i in range(q):
        acc = b[i].copy()
        for j in range(i):
            acc -= lower[i, j] * x[j]
        x[i] = acc / lower[i, i]
    return x


def backward_solve(lower: Array, b: Array) -> Array:
    """Solve ``L' x = b`` for a stack of lower-triangular ``L`` (q, q, N), ``b`` (q, k, N)."""
    q = lower.shape[0]
    x = np.empty_like(b)
    for i in reversed(range(q)):
        acc = b[i].copy()
        for j in range(i + 1, q):
            acc -= lower[j, i] * x[j]
        x[i] = acc / lower[i, i]
    return x


def matmul(a: Array, b: Array) -> Array:
    """Batched product of (q, r, N) and (r, k, N) stacks, giving (q, k, N)."""
    q, r = a.shape[0], a.shape[1]
    out = np.zeros((q, *b.shape[1:]), dtype=np.result_type(a, b))
    for i in range(q):
        for s in range(r):
            out[i] += a[i, s] * b[s]
    return out


def left_fixed(f: Array, b: Array) -> Array:
    """Product of one fixed matrix ``f`` (r, q) with every block of ``b`` (q, k, N).

    Written as scaled vector additions: for tiny ``f`` this is several times
    faster than ``np.tensordot``, which copies and calls BLAS with a 2-wide
    inner dimension.
    """
    out = np.zeros((f.shape[0], *b.shape[1:]))
    for i in range(f.shape[0]):
        for s in range(f.shape[1]):
            if f[i, s] != 0.0:
                out[i] += f[i, s] * b[s]
    return out


def right_fixed(b: Array, f: Array) -> Array:
    """Product of every block of ``b`` (q, k, N) with one fixed matrix ``f`` (k, r)."""
    out = np.zeros((b.shape[0], f.shape[1], b.shape[2]))
    for j in range(f.shape[1]):
        for s in range(f.shape[0]):
            if f[s, j] != 0.0:
                out[:, j] += f[s, j] * b[:, s]
    return out


def sum_of_products(a: Array, b: Array) -> Array:
    """``sum_n a[:, :, n] @ b[:, :, n].T`` for stacks (q, k, N) and (r, k, N): a (q, r) matrix.

    Done as one BLAS product of the stacks flattened to (q, k*N) and (r, k*N).
    """
    return a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T
