"""Writing report files so that a reader never sees half of one.

Every file goes to a temporary sibling first and is renamed into place;
a failure removes the temporaries and leaves an earlier report as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(page: str, out: Path, stem: str, *, pdf: bool) -> tuple[Path, Path | None]:
    """Write HTML (and PDF) to temporary siblings, then rename both into place."""
    html_target = out / f"{stem}.html"
    pdf_target = out / f"{stem}.pdf" if pdf else None
    temporaries: list[Path] = []
    try:
        html_tmp = temporary_sibling(html_target)
        temporaries.append(html_tmp)
        with html_tmp.open("w", encoding="utf-8") as handle:
            handle.write(page)
            handle.flush()
            os.fsync(handle.fileno())
        pdf_tmp = None
        if pdf_target is not None:
            from stepanalytics.reports.pdf import write_pdf

            pdf_tmp = temporary_sibling(pdf_target)
            temporaries.append(pdf_tmp)
            write_pdf(page, pdf_tmp)
        if pdf_tmp is not None and pdf_target is not None:
            os.replace(pdf_tmp, pdf_target)
        os.replace(html_tmp, html_target)
    finally:
        for leftover in temporaries:
            leftover.unlink(missing_ok=True)
    return html_target, pdf_target


def temporary_sibling(target: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    # mkstemp makes the file private (0600); a report is meant to be read by others,
    # so give it the permissions an ordinary new file would get under the umask.
    os.chmod(name, 0o666 & ~_current_umask())
    return Path(name)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
