"""Command modules are entry points, not libraries: only the CLI (and the command plug-in
registrations) import them; the product and the benchmarks never import the tests."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMANDS = REPO / "runtime" / "commands"


def _command_modules():
    """Dotted names of the modules under runtime/commands that register a CLI command."""
    names = set()
    for path in COMMANDS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef) and node.name == "register" for node in tree.body):
            names.add("edgesplit.runtime.commands." + path.stem)
    return names


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, "%s.%s" % (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _sources(*folders):
    for folder in folders:
        yield from sorted((REPO / folder).rglob("*.py"))


def test_no_module_imports_a_command_module_but_the_cli():
    commands = _command_modules()
    assert "edgesplit.runtime.commands.infer" in commands and "edgesplit.runtime.commands.demo" in commands
    offenders = ["%s:%d imports %s" % (path.relative_to(REPO), line, name)
                 for path in _sources("runtime", "codegen", "bench", "tests")
                 if path != REPO / "runtime" / "cli.py"
                 for line, name in _imports(path) if name in commands]
    assert offenders == []


def test_the_product_and_the_benchmarks_never_reach_into_tests():
    offenders = ["%s:%d %s" % (path.relative_to(REPO), line, name)
                 for path in _sources("runtime", "codegen", "policies_lite", "bench")
                 for line, name in _imports(path) if name.split(".")[0] in ("support", "tests")]
    offenders += ["%s: sys.path.insert" % path.relative_to(REPO) for path in _sources("runtime", "codegen", "bench")
                  if "sys.path.insert" in path.read_text(encoding="utf-8")]
    assert offenders == []
