"""Reporting periods: a quarter, a month, a year, or everything.

The data contract allows one piece of calendar information, the enrolment
month (``YYYY-MM``), so a report period selects patients by the month they
started the programme.  A QI report for ``2025Q4`` therefore describes the
patients enrolled from October to December 2025, followed up to the extract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stepanalytics.errors import UsageError

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True)
class ReportPeriod:
    """A closed range of enrolment months with a label for people.

    Parameters
    ----------
    label : str
        How the period is written in titles, e.g. ``2025Q4``.
    first_month, last_month : str
        First and last enrolment month included, ``YYYY-MM``.
    """

    label: str
    first_month: str
    last_month: str

    def contains(self, month: str) -> bool:
        """True when an enrolment month ``YYYY-MM`` lies in the period."""
        return self.first_month <= month <= self.last_month

    def describe(self) -> str:
        """One sentence saying which patients the period selects."""
        if self.first_month == self.last_month:
            return f"patients enrolled in {self.first_month}"
        return f"patients enrolled from {self.first_month} to {self.last_month}"


def parse_period(text: str | None) -> ReportPeriod | None:
    """Read a period written as ``2025Q4``, ``2025-11`` or ``2025``.

    Parameters
    ----------
    text : str or None
        The period; None or an empty string means the whole cohort.

    Returns
    -------
    ReportPeriod or None
        None when no period was given.

    Raises
    ------
    UsageError
        When the text is none of the accepted forms.

    Examples
    --------
    >>> parse_period("2025Q4")
    ReportPeriod(label='2025Q4', first_month='2025-10', last_month='2025-12')
    >>> parse_period("2025-03").describe()
    'patients enrolled in 2025-03'
    >>> parse_period(None) is None
    True
    """
    if text is None or str(text).strip() == "":
        return None
    value = str(text).strip()
    if match := _QUARTER.match(value):
        year, quarter = int(match.group(1)), int(match.group(2))
        first = 3 * (quarter - 1) + 1
        return ReportPeriod(f"{year}Q{quarter}", f"{year}-{first:02d}", f"{year}-{first + 2:02d}")
    if match := _MONTH.match(value):
        return ReportPeriod(value, value, value)
    if match := _YEAR.match(value):
        return ReportPeriod(value, f"{value}-01", f"{value}-12")
    raise UsageError(
        f"The period {value!r} is not understood. Write a quarter (2025Q4), "
        "a month (2025-11) or a year (2025)."
    )
