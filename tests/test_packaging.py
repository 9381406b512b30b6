"""What `pip install` sees: the distribution's name, its extras, its license and its docs.

`scalepy` on PyPI is another project, so the distribution is `scalepy-toolkit` while
the import name stays `scalepy`; every place that names it must agree.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hatchling.build import build_sdist, build_wheel
from mkdocs.config import load_config

import scalepy
from scalepy._extras import DISTRIBUTION

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Extras for working on scalepy itself, not for its users: left out of the docs' table.
DEVELOPMENT_EXTRAS = {"dev", "bench"}
PIP_INSTALL = re.compile(r"pip install '([^'\[]+)\[([^\]]+)\]'")
# `.` installs a clone; `{DISTRIBUTION}` is the hint's template in scalepy._extras.
ALLOWED_NAMES = {DISTRIBUTION, ".", "{DISTRIBUTION}"}
INSTALL_LINE = f"pip install '{DISTRIBUTION}[redis]'"


def requirement_name(requirement: str) -> str:
    """`redis>=5.2` -> `redis`; `limits[async-redis]>=4.0` -> `limits`."""
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert match is not None
    return match.group(0)


def test_the_distribution_name_agrees_everywhere_it_is_declared() -> None:
    """pyproject, the install hints and the installed metadata name one distribution."""
    project = PYPROJECT["project"]
    example = tomllib.loads((ROOT / "examples" / "todo" / "pyproject.toml").read_text())
    named = {
        requirement_name(requirement) for requirement in project["optional-dependencies"]["all"]
    }
    assert (DISTRIBUTION, {DISTRIBUTION}) == (project["name"], named)
    assert DISTRIBUTION == requirement_name(example["project"]["dependencies"][0])
    # Installed under that name, with the version of the code being run.
    assert scalepy.__version__ == importlib.metadata.version(DISTRIBUTION)


@pytest.mark.parametrize("page", ["README.md", "docs/index.md", "docs/getting-started.md"])
def test_the_readme_and_the_docs_show_the_one_install_line(page: str) -> None:
    """The README, the home page and Getting started show `pip install 'scalepy-toolkit[redis]'`."""
    assert f"```bash\n{INSTALL_LINE}\n```" in (ROOT / page).read_text()


def test_every_pip_install_line_names_the_distribution() -> None:
    """No page, docstring or error message tells anyone to `pip install 'scalepy[...]'`."""
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    sources += sorted((ROOT / "src").rglob("*.py"))
    named = {
        (path.relative_to(ROOT).as_posix(), match.group(1))
        for path in sources
        for match in PIP_INSTALL.finditer(path.read_text())
    }
    assert len(named) >= 10  # the pages and the install hints were all read
    assert [] == [(path, name) for path, name in sorted(named) if name not in ALLOWED_NAMES]


def extras_table() -> dict[str, str]:
    """Getting started's extras table: each extra and what it brings."""
    text = (ROOT / "docs" / "getting-started.md").read_text()
    table = text.split("| Extra | Brings | Needed for |\n| --- | --- | --- |\n", 1)[1]
    rows = [line.split("|") for line in table.split("\n\n", 1)[0].splitlines()]
    return {cells[1].strip().strip("`"): cells[2].strip() for cells in rows}


def test_the_extras_table_lists_every_extra_and_what_it_brings() -> None:
    """Each user-facing extra of pyproject.toml is a row naming exactly its packages.

    `retry` was missing, and `postgres` did not say that `scalepy.pools` needs tenacity.
    """
    extras: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
    table = extras_table()
    assert sorted(set(extras) - DEVELOPMENT_EXTRAS) == sorted(table)
    brings = {
        extra: ", ".join(f"`{requirement_name(requirement)}`" for requirement in requirements)
        for extra, requirements in extras.items()
        if extra not in DEVELOPMENT_EXTRAS | {"all"}
    }
    assert brings == {extra: table[extra] for extra in brings}
    assert "all of the above" == table["all"]
    all_extras = PIP_INSTALL.fullmatch(f"pip install '{extras['all'][0]}'")
    assert all_extras is not None
    assert sorted(brings) == sorted(all_extras.group(2).split(","))


def test_the_wheel_and_the_sdist_carry_the_license(tmp_path: Path) -> None:
    """The wheel's metadata names the distribution and its MIT license file; the sdist has it."""
    info = f"scalepy_toolkit-{scalepy.__version__}.dist-info"
    with zipfile.ZipFile(tmp_path / build_wheel(str(tmp_path))) as wheel:
        metadata = wheel.read(f"{info}/METADATA").decode()
        wheel_license = wheel.read(f"{info}/licenses/LICENSE").decode()
    with tarfile.open(tmp_path / build_sdist(str(tmp_path))) as sdist:
        names = set(sdist.getnames())
    assert (True, True) == (
        f"Name: {DISTRIBUTION}\n" in metadata,
        "License-Expression: MIT" in metadata,
    )
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text == wheel_license
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 scalepy maintainers\n")
    top = f"scalepy_toolkit-{scalepy.__version__}"
    assert {f"{top}/LICENSE", f"{top}/CHANGELOG.md", f"{top}/README.md"} <= names
    assert [] == [name for name in names if name.startswith(f"{top}/examples/")]


def docs_hooks() -> ModuleType:
    """docs/hooks.py, the module mkdocs.yml names in `hooks:`."""
    spec = importlib.util.spec_from_file_location("scalepy_docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_show_the_version_on_every_page_and_on_the_home_page() -> None:
    """The footer of every page (the config's copyright) and the home page carry the version."""
    config = load_config(str(ROOT / "mkdocs.yml"))
    config = config.plugins.on_config(config)
    hooks = docs_hooks()
    assert f"scalepy {scalepy.__version__} · MIT License" == config.copyright
    assert hooks.VERSION_PLACEHOLDER in (ROOT / "docs" / "index.md").read_text()


def test_the_changelog_page_is_the_root_changelog_with_docs_links() -> None:
    """The docs' changelog is CHANGELOG.md (Keep a Changelog), each link resolving in docs/."""
    page = docs_hooks().changelog(ROOT / "CHANGELOG.md")
    links = re.findall(r"\]\(([^)#:]+\.md)", page)
    assert (True, True) == (page.startswith("# Changelog\n"), "keepachangelog.com" in page)
    assert "## Unreleased\n\n### Added\n" in page
    assert (True, []) == (
        len(links) >= 5,
        [link for link in links if not (ROOT / "docs" / link).exists()],
    )
    root_links = re.findall(r"\]\(([^)#:]+\.md)", (ROOT / "CHANGELOG.md").read_text())
    assert [] == [link for link in root_links if not (ROOT / link).exists()]


def test_entries_go_to_the_root_changelog_not_to_the_docs_page() -> None:
    """docs/changelog.md is only a stub the hook replaces: an entry written there would be lost."""
    stub = (ROOT / "docs" / "changelog.md").read_text()
    assert ["# Changelog"] == [line for line in stub.splitlines() if line.startswith("#")]
    assert 2 == len(stub.splitlines())
