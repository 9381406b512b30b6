"""MkDocs hooks: the version on every page, and the changelog from the repository root.

- Every page's footer, and `{{ scalepy_version }}` in a page, show `scalepy.__version__`.
- `changelog.md` is `CHANGELOG.md` (one file, the one shipped in the sdist), its links
  made relative to the docs: `docs/cache.md` there is `cache.md` here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from scalepy import __version__

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

VERSION_PLACEHOLDER = "{{ scalepy_version }}"
CHANGELOG_PAGE = "changelog.md"
_DOCS_LINK = re.compile(r"\]\(docs/")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Put the version in the footer of every page."""
    config.copyright = f"scalepy {__version__} · MIT License"
    return config


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace the changelog page by the root `CHANGELOG.md`, and the version placeholder."""
    if page.file.src_uri == CHANGELOG_PAGE:
        markdown = changelog(Path(config.config_file_path).parent / "CHANGELOG.md")
    return markdown.replace(VERSION_PLACEHOLDER, __version__)


def changelog(path: Path) -> str:
    """Return the changelog at `path` with its `docs/…` links relative to the docs."""
    return _DOCS_LINK.sub("](", path.read_text(encoding="utf-8"))
