"""From an executed notebook to one self-contained HTML page.

nbconvert's ``basic`` template gives the cells' outputs without any page
chrome; we wrap them in our own small page (inline CSS, no script, no font
or style sheet fetched from anywhere) so that the file opens offline, prints
well and converts to PDF with WeasyPrint.  Code cells' inputs and prompts are
excluded: a committee reads results, not code.
"""

from __future__ import annotations

import copy
import html
import re
from html.parser import HTMLParser
from typing import Any

import nbformat
from nbconvert import HTMLExporter

#: Cells carrying this tag (e.g. a note for notebook users) are left out of reports.
REMOVE_TAG = "remove_cell"

_PAGE_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm;
        @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
:root { --ink: #1d2733; --muted: #5b6775; --rule: #d8dee6; --accent: #2f5d8a; }
html { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       font-size: 14px; line-height: 1.45; }
body { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.9em; margin: 0.2em 0 0.1em; color: var(--accent); }
h2 { font-size: 1.35em; margin: 1.6em 0 0.4em; padding-bottom: 0.2em;
     border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.1em; margin: 1.2em 0 0.3em; }
p { margin: 0.4em 0; }
.anchor-link { display: none; }
figure { margin: 0.8em 0 1.2em; break-inside: avoid; page-break-inside: avoid; }
figure img, figure svg { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.92em; color: var(--muted); margin-top: 0.35em;
             border-left: 3px solid var(--rule); padding-left: 0.6em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.9em; }
th, td { border-bottom: 1px solid var(--rule); padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid var(--muted); }
.sa-note { background: #f4f7fa; border-left: 4px solid var(--accent); padding: 0.5em 0.8em;
           margin: 0.8em 0; }
.sa-unavailable { background: #fff7e6; border-left: 4px solid #d9a13b; }
.sa-warning { background: #fdf0ef; border-left: 4px solid #c0504d; }
.sa-subtitle { color: var(--muted); margin-top: 0; }
.sa-keyfacts { display: flex; flex-wrap: wrap; gap: 10px; margin: 0.8em 0; }
.sa-keyfacts div { border: 1px solid var(--rule); border-radius: 6px; padding: 6px 12px; }
.sa-keyfacts b { display: block; font-size: 1.3em; color: var(--accent); }
.provenance { margin-top: 3em; font-size: 0.8em; color: var(--muted); break-before: page; }
.provenance table { font-size: 1em; }
.provenance th, .provenance td { text-align: left; word-break: break-all; }
.output_stderr, .output_error { display: none; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  table { font-size: 7pt; max-width: 100%; }
  th, td { padding: 2px 4px; }
  h2 { break-after: avoid; }
  figure img { max-height: 230mm; }
}
"""


def _strip_for_report(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Copy of the notebook without removable cells and without stderr output.

    Library warnings written to stderr (deprecations and the like) mean
    nothing to a committee; the analyses' own warnings are shown by the
    sections in plain language.
    """
    out = copy.deepcopy(nb)
    kept = []
    for cell in out.cells:
        if REMOVE_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.outputs
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
        kept.append(cell)
    out.cells = kept
    return out


def notebook_body_html(nb: nbformat.NotebookNode) -> str:
    """Render the outputs of an executed notebook as an HTML fragment, no code shown."""
    exporter = HTMLExporter(
        template_name="basic",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _resources = exporter.from_notebook_node(_strip_for_report(nb))
    return body


def build_page(*, title: str, body: str, provenance_html: str) -> str:
    """Wrap a body fragment into a complete HTML document with inline CSS.

    Examples
    --------
    >>> page = build_page(title="QI report", body="<p>hi</p>", provenance_html="")
    >>> page.startswith("<!DOCTYPE html>") and "<title>QI report</title>" in page
    True
    """
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="stepanalytics">'
        f"<title>{html.escape(title)}</title><style>{_PAGE_CSS}</style></head>"
        f'<body><main class="sa-report">{body}</main>{provenance_html}</body></html>\n'
    )


_RESOURCE_ATTRIBUTES = {"src", "srcset", "poster", "data", "background", "xlink:href"}
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)|@import\s+['\"]([^'\"]+)", re.IGNORECASE)


def _is_embedded(reference: str) -> bool:
    ref = reference.strip()
    return ref == "" or ref.startswith(("data:", "#"))


class _ResourceFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in _RESOURCE_ATTRIBUTES or (name == "href" and tag in {"link", "use", "image"}):
                candidates = value.split(",") if name == "srcset" else [value]
                for candidate in candidates:
                    ref = candidate.strip().split(" ")[0]
                    if not _is_embedded(ref):
                        self.found.append(f"<{tag} {name}={ref[:80]}>")
            if name == "style":
                self._css(value, tag)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data, "style")

    def _css(self, text: str, tag: str) -> None:
        for match in _CSS_URL.finditer(text):
            ref = match.group(1) or match.group(2) or ""
            if not _is_embedded(ref):
                self.found.append(f"<{tag}> url({ref[:80]})")


def external_resources(page: str) -> list[str]:
    """List every resource the page would fetch from outside itself.

    Images, scripts, style sheets, frames and CSS ``url()`` references count;
    ``data:`` URIs and in-page ``#`` fragments do not.  Hyperlinks (``<a
    href>``) are not resources and are not listed.

    Examples
    --------
    >>> external_resources('<img src="data:image/png;base64,AAAA"><img src="x.png">')
    ['<img src=x.png>']
    """
    finder = _ResourceFinder()
    finder.feed(page)
    finder.close()
    return finder.found


_DATA_URI = re.compile(r"data:[^\s\"'<>)]*")
_TOKEN = re.compile(r"[\w\-.:/]+")


def find_identifiers(page: str, identifiers: Any) -> list[str]:
    """Return the identifiers that appear as whole words in the page's text.

    Embedded images (``data:`` URIs) are removed first: base64 text can
    contain any short string by chance.  Matching is on whole tokens, so
    ``P0001`` is not found inside ``P00012``.

    Parameters
    ----------
    page : str
        Rendered HTML.
    identifiers : iterable of str
        E.g. every ``patient_id`` of the cohort.

    Examples
    --------
    >>> find_identifiers("<p>Patient P0002 had a flare-up</p>", ["P0001", "P0002"])
    ['P0002']
    """
    wanted = {str(i) for i in identifiers}
    if not wanted:
        return []
    text = html.unescape(_DATA_URI.sub(" ", page))
    tokens: set[str] = set()
    for token in _TOKEN.findall(text):
        tokens.add(token)
        # Punctuation glued to an id (end of sentence, a path) must not hide it.
        tokens.update(part for part in re.split(r"[.:/]", token) if part)
    return sorted(wanted & tokens)
