"""What PyPI shows of each package: its README (the long description) links only to absolute
URLs, which work on PyPI; the FastAPI package can serve its quick start (`server` extra)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))
LINK = re.compile(r"\]\(([^)\s]+)\)|<a\s[^>]*href=\"([^\"]+)\"")


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_every_link_of_the_pypi_description_is_absolute(package: Path) -> None:
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    readme = (package / project["readme"]).read_text()
    links = [a or b for a, b in LINK.findall(readme)]
    assert links
    assert [link for link in links if not link.startswith(("https://", "http://"))] == []


def test_the_fastapi_package_has_a_server_extra() -> None:
    project = tomllib.loads((ROOT / "packages/fastapi/pyproject.toml").read_text())["project"]
    (server,) = project["optional-dependencies"]["server"]
    assert server.startswith("uvicorn")
