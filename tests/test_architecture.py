"""The architecture page and the import contract describe the code as it is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"


def test_every_module_the_architecture_page_names_exists() -> None:
    named = set(re.findall(r"`(wcfollowup/[\w/.-]+)`", PAGE.read_text(encoding="utf-8")))
    assert len(named) >= 20, "the page should name the modules that own each arrow"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_the_readme_links_the_architecture_page() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_no_module_is_over_500_lines_outside_migrations() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in (ROOT / "wcfollowup").rglob("*.py")
        if "migrations" not in path.parts
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > 520
    }
    assert not too_long, f"split these along a seam: {too_long}"


def test_the_import_contract_holds() -> None:
    """The layers (cli > service > tools > engine > adapters > core > config > common), the
    pure core, the sandbox apart and no cycles: `.importlinter`."""
    linter = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(linter), "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
