"""No dependency floor admits a version with a published advisory that concerns us.

``pyproject.toml``'s lower bounds are what a fresh install may resolve to; a floor below a fix
lets a pinned or old environment run a known-vulnerable parser or template sandbox. The table
names each advisory and the first release that fixed it (``make audit`` checks the same against
PyPI's live vulnerability data; this test needs no network).
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

FIXED_IN = {
    "jinja2": ("3.1.6", "CVE-2025-27516"),
    "starlette": ("1.0.1", "CVE-2025-54121, CVE-2026-48710"),
    "python-multipart": ("0.0.30", "CVE-2024-53981, CVE-2026-40347, -42561, -53538"),
    "h11": ("0.16.0", "CVE-2025-43859"),
    "urllib3": ("2.7.0", "CVE-2025-50181, -50182, CVE-2026-21441, -44432"),
}


def requirements() -> dict[str, Requirement]:
    path = Path(__file__).parent.parent / "pyproject.toml"
    listed = tomllib.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"]
    return {Requirement(item).name.lower(): Requirement(item) for item in listed}


@pytest.mark.parametrize("name", sorted(FIXED_IN))
def test_floor_excludes_every_advised_version(name: str) -> None:
    fixed, advisory = FIXED_IN[name]
    required = requirements()
    assert name in required, f"{name} must be an explicit dependency ({advisory})"
    floors = [Version(s.version) for s in required[name].specifier if s.operator == ">="]
    assert floors and max(floors) >= Version(fixed), f"{name} floor admits {advisory}"
    assert required[name].specifier.contains(version(name)), f"installed {name} is too old"
