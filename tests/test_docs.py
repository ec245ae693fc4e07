"""The repository speaks in the present tense and its documents' links resolve.

Three rules, checked on the files of the git checkout (tracked ones and new
ones that git does not ignore), so that the checks follow the repository
and not whatever else lies in the working tree:

* nothing cites the working specification, a document outside the
  repository: the facts the code relies on are stated in ``derivations/``;
* no development history numbered by working session or round ("session 7",
  "this VM", "next round"): a figure names the command that reproduces it
  and, where it matters, a date or a commit;
* every relative link of the top-level documents points to an existing file.

Two more keep the code and its documents in step: every section, heading or
equation that a file cites in ``derivations/`` exists there, and every test
that a document names as ``tests/file.py::test_name`` exists.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Text files whose wording is checked.
TEXT_SUFFIXES = (".md", ".py", ".json", ".cfg")

#: Documents whose relative links must resolve.
LINKED_DOCUMENTS = ("README.md", "derivations/*.md", "benchmarks/README.md",
                    "benchmarks/results/README.md", "refdeblur/models/README.md",
                    "examples/README.md")

#: This file names the patterns it forbids.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

FORBIDDEN = {
    "cites the external method spec": re.compile(r"method[- ]spec", re.IGNORECASE),
    "cites a spec section or open point": re.compile(r"\bspec (?:O\d|§)", re.IGNORECASE),
    # \b keeps identifiers such as a file name "k17_session4.npz" out.
    "numbers a working session": re.compile(r"\bsessions?[ -]?\d", re.IGNORECASE),
    "refers to a working session": re.compile(
        r"\b(?:this|next|previous|last|earlier|that) session\b", re.IGNORECASE),
    "refers to the development machine": re.compile(r"\bthis VM\b", re.IGNORECASE),
    "numbers a round of work": re.compile(r"\b(?:next round|round \d+\b)", re.IGNORECASE),
}

#: A citation of a derivation: the document, then what follows it.
CITATION = re.compile(r"derivations/(\w+)\.md`{0,2}(.{0,60})")
CITED_TITLE = re.compile(r"^[,:]?\s*(?:§\d+,?\s*)?\"([^\"]+)\"")
CITED_SECTION = re.compile(r"^[,:]?\s*§(\d+)")
CITED_EQUATION = re.compile(r"^[,:]?\s*(?:eq\.\s*|equations\s*)?\(?([A-Z]\d+)\b")
CITED_TEST = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def checkout_files():
    """Tracked files and new files git does not ignore, relative paths."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted({name for name in listing.split("\0")
                   if name and (ROOT / name).is_file()})


def text_files():
    return [name for name in checkout_files()
            if name.endswith(TEXT_SUFFIXES) and name != SELF]


def test_no_external_spec_and_no_session_history():
    hits = []
    for name in text_files():
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for why, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    hits.append(f"{name}:{number}: {why}: {line.strip()[:120]}")
    assert not hits, "\n".join(hits)


def linked_documents():
    documents = set()
    for pattern in LINKED_DOCUMENTS:
        documents.update(ROOT.glob(pattern))
    return sorted(documents)


@pytest.mark.parametrize("document", linked_documents(),
                         ids=lambda path: path.relative_to(ROOT).as_posix())
def test_relative_links_resolve(document):
    text = document.read_text(encoding="utf-8")
    # Links inside code blocks are examples, not links.
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    missing = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same document
        path = target.split("#", 1)[0]
        if not (document.parent / path).exists():
            missing.append(target)
    assert not missing, f"{document.relative_to(ROOT)}: missing {missing}"


def test_the_forbidden_patterns_catch_what_they_should():
    samples = {
        "measured in session 8": True,
        "benchmarks/results/session8-2026-11-28/inference.txt": True,
        "Session 7: what the default uses": True,
        "the session-4 file": True,
        "this VM is faster": True,
        "what the next session should do": True,
        "see method-spec O4": True,
        "(spec O7)": True,
        "a copy is runs/k17_session4.npz": False,
        "one alternation per round of the loop": False,
        "the kernel refinement of step 6b": False,
    }
    for text, forbidden in samples.items():
        found = any(pattern.search(text) for pattern in FORBIDDEN.values())
        assert found == forbidden, text


def _flattened(text):
    """Text with line breaks, comment markers and doc-comment markers removed."""
    return re.sub(r"\s*\n\s*(?:#:?\s*)?", " ", text)


def test_cited_sections_of_derivations_exist():
    problems = []
    for name in text_files():
        text = _flattened((ROOT / name).read_text(encoding="utf-8", errors="replace"))
        for stem, tail in CITATION.findall(text):
            document = ROOT / "derivations" / f"{stem}.md"
            if not document.is_file():
                problems.append(f"{name}: derivations/{stem}.md does not exist")
                continue
            lines = document.read_text(encoding="utf-8").splitlines()
            titles = [line for line in lines if line.startswith(("#", "**"))]
            if match := CITED_TITLE.match(tail):
                if not any(match.group(1) in line for line in titles):
                    problems.append(f"{name}: no heading {match.group(1)!r} in {stem}.md")
            if match := CITED_SECTION.match(tail):
                if not any(re.match(rf"#+ {match.group(1)}\.", line) for line in lines):
                    problems.append(f"{name}: no section §{match.group(1)} in {stem}.md")
            elif match := CITED_EQUATION.match(tail):
                if f"({match.group(1)})" not in "\n".join(lines):
                    problems.append(f"{name}: no equation ({match.group(1)}) in {stem}.md")
    assert not problems, "\n".join(sorted(set(problems)))


def test_tests_named_by_the_documents_exist():
    missing = []
    for document in linked_documents():
        text = document.read_text(encoding="utf-8")
        for path, test in CITED_TEST.findall(text):
            source = ROOT / path
            if not source.is_file() or not re.search(
                    rf"def {test}\b", source.read_text(encoding="utf-8")):
                missing.append(f"{document.relative_to(ROOT)}: {path}::{test}")
    assert not missing, "\n".join(missing)
