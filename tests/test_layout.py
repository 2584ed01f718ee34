"""The package layout: no __init__.py in the source folders, all mapped."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("actors", "http", "storage")


def test_stdlib_http_client_still_imports_from_the_repo_root() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, ''); import http.client; print(http.client.__file__)",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert not out.startswith(str(ROOT)), out


def test_no_init_files_in_source_folders() -> None:
    assert [p for folder in SOURCES for p in (ROOT / folder).rglob("__init__.py")] == []


def test_every_source_folder_with_python_files_is_a_listed_package() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}
    mapping = {
        k.strip(): v.strip()
        for k, v in (line.split("=") for line in cfg["options"]["package_dir"].splitlines() if "=" in line)
    }
    assert mapping == {f"wafleet.{s}": s for s in SOURCES}
    wanted = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.parent.relative_to(ROOT / folder)
            wanted.add(".".join(["wafleet", folder, *rel.parts]))
    assert wanted <= listed, f"missing from setup.cfg packages: {sorted(wanted - listed)}"


def test_project_code_is_imported_only_as_wafleet() -> None:
    bad = []
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                stripped = line.strip()
                if stripped.startswith(tuple(f"{kw} {s}." for kw in ("from", "import") for s in SOURCES)):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {stripped}")
    assert bad == []


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, read from its syntax tree (not from its text: a docstring
    that names ``wafleet.http`` imports nothing)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_dependencies_point_one_way() -> None:
    """http -> actors -> storage: storage imports neither, actors never import http."""
    offenders = []
    for folder, forbidden in (("storage", ("wafleet.actors", "wafleet.http")), ("actors", ("wafleet.http",))):
        for path in (ROOT / folder).rglob("*.py"):
            imported = imported_modules(path)
            offenders += [
                f"{path.relative_to(ROOT)} imports {m}"
                for m in sorted(imported)
                for f in forbidden
                if _under(m, f)
            ]
    assert offenders == []


def test_the_import_check_reads_imports_not_text(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Refusals that wafleet.http maps to statuses."""\n'
        "import wafleet.httpx_helpers\n"
        "from wafleet.http import api\n"
        "from wafleet import http as web\n"
    )
    imported = imported_modules(sample)
    assert [m for m in sorted(imported) if _under(m, "wafleet.http")] == ["wafleet.http", "wafleet.http.api"]
    assert not _under("wafleet.httpx_helpers", "wafleet.http")
