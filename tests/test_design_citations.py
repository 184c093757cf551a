"""Every citation of the design notes in the repository points at a section they have."""

import pathlib
import re

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
DESIGN = REPOSITORY / "docs" / "DESIGN.md"
CITATION = re.compile(r"(?:docs/)?DESIGN\.md(?: section| §)\s*(\d+(?:\.\d+)?)")


def test_design_citations_name_existing_sections():
    sections = set(re.findall(r"^#+ (\d+(?:\.\d+)?)[. ]", DESIGN.read_text(), flags=re.M))
    assert {"3.2", "3.3", "3.4", "5", "6", "7", "9"} <= sections
    cited = {}
    for path in REPOSITORY.rglob("*"):
        if path.suffix not in (".py", ".md", ".yaml") or ".git" in path.parts or path == DESIGN:
            continue
        for number in CITATION.findall(path.read_text(errors="replace")):
            cited.setdefault(number, []).append(str(path.relative_to(REPOSITORY)))
    assert cited, "no citation found: the pattern is wrong"
    missing = {number: files for number, files in cited.items() if number not in sections}
    assert not missing, f"citations of sections docs/DESIGN.md does not have: {missing}"


def test_no_citation_of_notes_the_repository_lacks():
    """ "the design notes" or a bare "DESIGN.md" must say where: docs/DESIGN.md."""
    stale = []
    for path in REPOSITORY.rglob("*"):
        if path.suffix not in (".py", ".md", ".yaml") or ".git" in path.parts:
            continue
        if path in (DESIGN, pathlib.Path(__file__).resolve()):
            continue
        text = path.read_text(errors="replace")
        if "the design notes" in text or re.search(r"(?<!docs/)DESIGN\.md", text):
            stale.append(str(path.relative_to(REPOSITORY)))
    assert not stale, f"cite docs/DESIGN.md in: {sorted(set(stale))}"
