"""The docs (issue #26): README is a front door under 15 KB, each doc in docs/ says whom it is for,
and every relative link in them leads to a file, and to a heading when it names one."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces become hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 15 * 1024
    # What it is, then the quick start and install steps early, then where the rest lives.
    assert readme.index("## Quick start") < 4 * 1024
    assert re.search(r"^1\. .+\n(.|\n)*^2\. ", readme, re.M)
    for doc in ("usage", "install", "operations", "admin", "architecture"):
        assert f"](docs/{doc}.md)" in readme, doc


def test_the_docs_exist_and_each_starts_with_whom_it_is_for():
    assert {p.stem for p in DOCS} >= {"usage", "install", "operations", "admin", "architecture"}
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        assert lines[0].startswith("# "), doc.name
        assert lines[2].startswith("*For "), doc.name


def test_operations_covers_backup_restore_upgrades_and_sizing():
    ops = (ROOT / "docs" / "operations.md").read_text()
    for heading in ("## Backup and restore", "## Upgrades and rollbacks", "## Sizing",
                    "## Running several replicas", "## Operating it"):
        assert heading in ops, heading
    # The rollback it describes is what lumabot does: an older lumabot refuses a newer schema.
    from lumabot.store import migrate
    assert "is newer than this lumabot" in Path(migrate.__file__).read_text()
    assert "is newer than this lumabot" in ops


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_leads_somewhere(page):
    text = page.read_text()
    broken = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(target)
    assert broken == []
