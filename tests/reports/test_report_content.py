"""What every rendered report must (and must not) contain."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import nbformat
from bs4 import BeautifulSoup

import stepanalytics
from stepanalytics.reports import RenderedReport

ROOT = Path(__file__).resolve().parents[2]
QI_CLINIC = "C02"  # as in conftest.py
THRESHOLD = 10  # the default small-cell threshold
_COUNT_CELL = re.compile(r"^(\d[\d,]*)(?: \(\d+%\))?$")
_COUNT_PHRASE = re.compile(r"\b(\d+) (?:patients?|stays?|events?|people)\b")


def _visible_text(page: str) -> str:
    soup = BeautifulSoup(page, "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return soup.get_text(" ")


def test_no_code_and_no_prompts(rendered: tuple[str, str]) -> None:
    kind, page = rendered
    text = _visible_text(page)
    notebook = {"qi": "qi_report", "benchmark": "clinic_benchmark", "explorer": "cohort_explorer"}
    nb = nbformat.read(ROOT / "notebooks" / f"{notebook[kind]}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            code = line.split("#")[0].strip()
            if len(code) > 12:  # short lines ("data = ''") are too generic to search for
                assert code not in text, f"code shown in the {kind} report: {code}"
    assert "In [" not in text and "In\xa0[" not in text
    assert "input_area" not in page and "jp-InputArea" not in page
    assert "Traceback" not in text


def test_no_patient_id(rendered: tuple[str, str], patient_ids: set[str]) -> None:
    kind, page = rendered
    without_images = re.sub(r"data:[^\"')\s]+", "", page)
    pattern = re.compile(r"\bP\d{6}\b")  # the generator's pseudonymous ids
    assert pattern.findall(without_images) == [], kind
    tokens = set(re.findall(r"[\w-]+", without_images))
    assert not (tokens & patient_ids), kind


def test_every_image_embedded(rendered: tuple[str, str]) -> None:
    kind, page = rendered
    soup = BeautifulSoup(page, "html.parser")
    images = soup.find_all("img")
    assert images, f"the {kind} report has no figure"
    for image in images:
        assert image["src"].startswith("data:image/"), image["src"][:60]
    for tag in soup.find_all(["script", "link", "iframe", "source", "video", "audio"]):
        assert not tag.get("src") and not tag.get("href"), str(tag)[:80]
    assert "url(http" not in page and "@import" not in page


def test_every_figure_has_a_caption(rendered: tuple[str, str]) -> None:
    kind, page = rendered
    soup = BeautifulSoup(page, "html.parser")
    for image in soup.find_all("img"):
        figure = image.find_parent("figure")
        assert figure is not None and figure.find("figcaption"), kind
        assert len(figure.find("figcaption").get_text(strip=True)) > 40


def test_no_small_cell_in_committee_tables(rendered: tuple[str, str]) -> None:
    kind, page = rendered
    if kind == "explorer":  # a research report; the committee rule is not applied there
        return
    soup = BeautifulSoup(page, "html.parser")
    for table in soup.select("main table"):
        header = [th.get_text(strip=True) for th in table.find_all("th")]
        for cell in table.find_all("td"):
            match = _COUNT_CELL.match(cell.get_text(strip=True))
            if match:
                value = int(match.group(1).replace(",", ""))
                assert not 1 <= value <= THRESHOLD, f"{kind}: small count {value} in {header}"
    for value in _COUNT_PHRASE.findall(_visible_text(str(soup.select_one("main")))):
        assert not 1 <= int(value) <= THRESHOLD, f"{kind}: small count {value} in the text"


def test_provenance_block(qi_report: RenderedReport, demo_dir: Path) -> None:
    soup = BeautifulSoup(qi_report.html.read_text(encoding="utf-8"), "html.parser")
    block = soup.find("script", id="provenance")
    facts = json.loads(block.string)
    assert facts["parameters"]["clinic"] == QI_CLINIC
    assert facts["parameters"]["data"] == str(demo_dir.resolve())
    assert facts["package_version"] == stepanalytics.__version__
    assert datetime.strptime(facts["timestamp_utc"], "%Y-%m-%dT%H:%M:%SZ")
    files = sorted(p for p in demo_dir.iterdir() if p.is_file())
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert {f["name"]: f["sha256"] for f in facts["data"]["files"]} == expected
    overall = hashlib.sha256(
        "".join(f"{name}\0{digest}\n" for name, digest in sorted(expected.items())).encode()
    ).hexdigest()
    assert facts["data"]["sha256"] == overall
    text = soup.get_text(" ")
    assert "Provenance" in text and overall in text


def test_pdf_written(qi_report: RenderedReport) -> None:
    assert qi_report.pdf is not None
    content = qi_report.pdf.read_bytes()
    assert content.startswith(b"%PDF-") and len(content) > 10_000
    assert not list(qi_report.html.parent.glob(".*.tmp"))
