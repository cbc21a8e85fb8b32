"""Pseudonymous patient ids: a keyed hash of the source's record id.

The same record id and the same secret always give the same pseudonym, so
a cohort imported again next month (or from another export of the same
system) joins up, while nobody without the secret can go back from the
pseudonym to the record.  The hash is HMAC-SHA256 (RFC 2104, FIPS 198-1);
a plain unkeyed hash would not do, because record numbers are few enough to
be hashed exhaustively.

Pseudonyms are written with letters only: ``p`` followed by 16 lower-case
letters, the first 16 bytes of the HMAC each taken modulo 26 (about 75
bits), so they can never look like the long digit runs of record,
insurance or phone numbers that the privacy guard refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

import numpy as np
import pandas as pd

from stepanalytics.errors import Problem, UsageError

#: Shortest secret accepted; shorter keys make the hash guessable.
MIN_SECRET_LENGTH = 16
_N_LETTERS = 16
# A run of 6+ digits, allowing the separators people type inside numbers
# (123-45-6789, 0012 3456): the shape of medical record and insurance numbers.
_MRN_PATTERN = re.compile(r"\d(?:[\s./-]?\d){5,}")


def _letters(digests: bytes, n: int) -> list[str]:
    """Encode ``n`` concatenated SHA-256 digests as ``p`` + 16 letters each, all at once."""
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(n, 32)[:, :_N_LETTERS]
    letters = (raw % 26 + ord("a")).astype(np.uint8).tobytes().decode("ascii")
    return ["p" + letters[i * _N_LETTERS : (i + 1) * _N_LETTERS] for i in range(n)]


def _digests(record_ids: list[str], secret: str) -> bytes:
    keyed = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    out = []
    for record_id in record_ids:
        h = keyed.copy()  # the key's pads are hashed once, not once per id
        h.update(record_id.encode("utf-8"))
        out.append(h.digest())
    return b"".join(out)


def pseudonym(record_id: str, secret: str) -> str:
    """The pseudonym of one record id under ``secret``.

    Examples
    --------
    >>> p = pseudonym("MRN0012345", "a secret of sixteen chars")
    >>> len(p), p.isalpha(), p == pseudonym("MRN0012345", "a secret of sixteen chars")
    (17, True, True)
    """
    return _letters(_digests([record_id], secret), 1)[0]


def pseudonymise(record_ids: pd.Series, secret: str) -> pd.Series:
    """Replace every record id by its keyed-hash pseudonym.

    Each distinct id is hashed once, so a million rows of a hundred thousand
    patients cost a hundred thousand HMACs.

    Parameters
    ----------
    record_ids : Series
        Source ids as text (trimmed by the caller).
    secret : str
        The user's key; at least :data:`MIN_SECRET_LENGTH` characters.

    Returns
    -------
    Series
        Pseudonyms, same index.

    Raises
    ------
    UsageError
        When the secret is too short, or (astronomically unlikely) two ids
        collide.

    Examples
    --------
    >>> import pandas as pd
    >>> out = pseudonymise(pd.Series(["17", "18", "17"]), "0123456789abcdefXYZ")
    >>> out[0] == out[2], out[0] == out[1]
    (True, False)
    """
    check_secret(secret)
    codes, uniques = pd.factorize(record_ids.astype(str), use_na_sentinel=True)
    ids = [str(u) for u in uniques]
    hashed = np.array(_letters(_digests(ids, secret), len(ids)), dtype=object)
    if len(set(hashed)) != len(hashed):
        raise UsageError("two record ids gave the same pseudonym; use a different secret")
    out = np.full(len(codes), None, dtype=object)
    has = codes >= 0
    out[has] = hashed[codes[has]]
    return pd.Series(out, index=record_ids.index, dtype=object)


def check_secret(secret: str) -> None:
    """Refuse secrets too short to protect the record ids.

    Raises
    ------
    UsageError
    """
    if len(secret) < MIN_SECRET_LENGTH:
        raise UsageError(
            f"the pseudonymisation secret has {len(secret)} characters; use at least "
            f"{MIN_SECRET_LENGTH} (for example the output of `openssl rand -hex 32`), and keep "
            "it safe: the same secret gives the same pseudonyms next time"
        )


def secret_from_env(variable: str) -> str:
    """Read the secret from an environment variable.

    Raises
    ------
    UsageError
        When the variable is unset or empty.
    """
    value = os.environ.get(variable, "")
    if not value:
        raise UsageError(
            f"the environment variable {variable} is not set or empty; set it to the "
            f"pseudonymisation secret (e.g. `export {variable}=$(cat ~/.stepanalytics_secret)`)"
        )
    check_secret(value)
    return value


def looks_like_record_number(ids: pd.Series) -> np.ndarray:
    """Which ids look like medical record, insurance or phone numbers.

    The rule: a run of six or more digits, possibly broken by spaces, dots,
    slashes or hyphens.  Study ids such as ``1``, ``12-7`` or ``S-0042``
    pass; ``MRN0012345``, ``123-45-6789`` or ``4051237`` do not.

    Examples
    --------
    >>> import pandas as pd
    >>> looks_like_record_number(pd.Series(["12", "12-7", "S-0042", "MRN0012345", "123-45-6789"]))
    array([False, False, False,  True,  True])
    """
    codes, uniques = pd.factorize(ids.astype(str), use_na_sentinel=True)
    flagged = np.array([bool(_MRN_PATTERN.search(str(u))) for u in uniques], dtype=bool)
    out = np.zeros(len(codes), dtype=bool)
    has = codes >= 0
    out[has] = flagged[codes[has]]
    return out


def record_number_problem(table: str, column: str, ids: pd.Series) -> Problem | None:
    """A problem naming the ids that look like record numbers, or None (values hidden)."""
    mask = looks_like_record_number(ids)
    return Problem.from_mask(
        table,
        column,
        ids.to_frame(),
        mask,
        "ids look like medical record or insurance numbers and cannot be used as patient ids",
        "pseudonymise them: pass a secret (--secret-env VARIABLE) so that each id is replaced "
        "by a keyed hash",
        redact=True,
    )
