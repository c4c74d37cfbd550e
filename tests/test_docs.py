"""Every ```python block in README.md and docs/*.md runs, as a user would paste it.

Blocks of one file run in order in one namespace (later blocks may use earlier names),
in a fresh temporary working directory. A block preceded by ``<!-- no-test -->`` is
skipped (for fragments that need a server, e.g. PostgreSQL URLs).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(<!--\s*no-test\s*-->\s*\n)?```python\n(.*?)```", re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    return [code for skip, code in _BLOCK.findall(path.read_text(encoding="utf-8")) if not skip]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no python blocks")
    monkeypatch.chdir(tmp_path)
    for name in ("DATASTORE_LITE_URL", "DATASTORE_LITE_INDEX_YAML", "DATASTORE_LITE_CONSISTENCY"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{path.name}[block {number}]", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{path.name} block {number} failed: {type(exc).__name__}: {exc}\n{code}")
    # clients opened by the examples hold files in tmp_path; close them
    for value in list(namespace.values()):
        if type(value).__name__ == "Client":  # type() never touches proxies (flask.current_app)
            value.close()  # type: ignore[attr-defined]
    assert os.getcwd() == str(tmp_path)


def test_readme_has_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
