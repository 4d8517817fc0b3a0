"""docs/ is the home of the design and the formats: every node type is specified, every DESIGN § the code cites exists."""

import re
from pathlib import Path

from tcja_deploy.conversion.graph import NODE_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_every_node_type_has_a_formats_section():
    text = (ROOT / "docs" / "FORMATS.md").read_text()
    headings = set(re.findall(r"^### `([a-z0-9_]+)`", text, flags=re.M))
    assert set(NODE_TYPES) <= headings, sorted(set(NODE_TYPES) - headings)


def test_design_sections_cited_in_the_code_exist():
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    sections = set(re.findall(r"^## §?(\d+)", design, flags=re.M))
    cited = set()
    for p in (ROOT / "tcja_deploy").rglob("*.py"):
        cited |= set(re.findall(r"DESIGN(?:\.md)? §(\d+)", p.read_text()))
        assert "shared/DESIGN" not in p.read_text(), p
    assert cited and cited <= sections, (sorted(cited), sorted(sections))
