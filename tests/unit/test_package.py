"""The package's shape: every sub-package imports on its own (no import cycles, in any order),
and each registry has its config files."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.configs import CONF_DIR

import pixelproof
from pixelproof.attacks.spec import ATTACKS

PACKAGES = sorted(p.parent.name for p in Path(pixelproof.__file__).parent.glob("*/__init__.py"))


def test_every_package_imports_first_in_a_fresh_process():
    # one process per package, so each is the first pixelproof module imported: a cycle that
    # only works in one import order fails here
    for package in PACKAGES:
        result = subprocess.run(
            [sys.executable, "-c", f"import pixelproof.{package}"], capture_output=True, text=True
        )
        assert result.returncode == 0, f"pixelproof.{package}: {result.stderr[-2000:]}"


def test_packages_import_each_other_without_a_cycle():
    """Counting lazy imports inside functions too: a package that needs another never gets
    needed back (explainer and models once imported each other)."""
    root = Path(pixelproof.__file__).parent
    needs: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts
        if len(parts) == 1:
            continue  # entry points and __init__ sit above every package
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("pixelproof.") and name.split(".")[1] != parts[0]:
                    needs.setdefault(parts[0], set()).add(name.split(".")[1])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
            for nxt in needs.get(start, ())
        )

    cycles = [p for p in needs if reaches(p, p, {p})]
    assert not cycles, {p: sorted(needs[p]) for p in cycles}


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_have_a_docstring(package):
    init = Path(pixelproof.__file__).parent / package / "__init__.py"
    assert init.read_text().startswith('"""'), f"{init} should say what the package is for"


def test_every_attack_has_a_config_and_every_config_an_attack():
    configs = {p.stem for p in (Path(CONF_DIR) / "attack").glob("*.yaml")} - {"none"}
    assert configs == set(ATTACKS)
