"""Ray stays off the boards: only runtime/pool imports it, and only the pool command imports runtime/pool
(apart from its local-cluster helper, which starts the `ray` program and imports nothing of Ray)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_only_the_pool_package_imports_ray():
    offenders = ["%s:%d %s" % (path.relative_to(REPO), line, name)
                 for folder in ("runtime", "policies_lite") for path in sorted((REPO / folder).rglob("*.py"))
                 if "pool" not in path.relative_to(REPO).parts
                 for line, name in _imports(path) if name.split(".")[0] == "ray"]
    assert offenders == []


def test_only_the_pool_command_imports_the_pool_package():
    allowed = {REPO / "runtime" / "commands" / "pool.py"}
    offenders = ["%s:%d %s" % (path.relative_to(REPO), line, name)
                 for folder in ("runtime", "policies_lite") for path in sorted((REPO / folder).rglob("*.py"))
                 if path not in allowed and "pool" not in path.relative_to(REPO).parts[:2]
                 for line, name in _imports(path) if name.startswith("edgesplit.runtime.pool")]
    assert offenders == []


def test_the_pool_command_imports_ray_only_when_it_runs():
    tree = ast.parse((REPO / "runtime" / "commands" / "pool.py").read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [getattr(node, "module", None) or node.names[0].name for node in top_level]
    assert not [n for n in names if n.split(".")[0] == "ray" or n.startswith("edgesplit.runtime.pool")], names
