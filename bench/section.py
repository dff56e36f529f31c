"""Replace (or append) one benchmark's section of docs/benchmarks.md.

Usage: python bench/section.py <name> <file holding the section's markdown>. The section is
kept between `<!-- name:start -->` and `<!-- name:end -->`, so each bench script refreshes only
its own part.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by the script it names; rerun it to refresh.\n"


def write_section(name: str, body: str, out: Path = OUT) -> None:
    """Put `body` between the section's markers in `out`."""
    section = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
    text = out.read_text("utf-8") if out.exists() else HEADER
    marker = re.escape(name)
    pattern = re.compile(rf"<!-- {marker}:start -->.*?<!-- {marker}:end -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    out.write_text(text, "utf-8")


if __name__ == "__main__":
    write_section(sys.argv[1], Path(sys.argv[2]).read_text("utf-8"))
