"""PDF from the rendered HTML page, with WeasyPrint (no browser needed).

WeasyPrint is an optional dependency (``pip install stepanalytics[pdf]``);
when it is missing the caller gets a clear error, not an ImportError.
"""

from __future__ import annotations

import logging
from pathlib import Path

from stepanalytics.reports.inputs import ReportError


def write_pdf(page: str, target: Path) -> None:
    """Write the HTML page as an A4 PDF.

    Parameters
    ----------
    page : str
        A self-contained page from :func:`stepanalytics.reports.html.build_page`;
        its ``@page`` rules give paper size, margins and page numbers.
    target : Path
        File to write (the caller writes to a temporary sibling and renames).

    Raises
    ------
    ReportError
        When WeasyPrint is not installed or fails.

    Notes
    -----
    ``base_url`` is deliberately unset: every image is a ``data:`` URI, so
    WeasyPrint never has to fetch anything.
    """
    try:
        import weasyprint
    except ImportError:
        raise ReportError(
            "A PDF was asked for but WeasyPrint is not installed. "
            "Install it with: pip install 'stepanalytics[pdf]'"
        ) from None
    # WeasyPrint reports unsupported CSS properties through logging at WARNING.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    try:
        weasyprint.HTML(string=page).write_pdf(str(target))
    except Exception as err:  # WeasyPrint raises many kinds; all mean "no PDF"
        raise ReportError(f"The PDF could not be made: {type(err).__name__}: {err}") from None
