"""A command listed by name and one-line help, whose module (and its imports) loads only when it runs.

``edgesplit --help`` lists every command from these entries alone; the command being run imports its
module and calls that module's ``register(commands)``, which builds the full parser. Workstation
commands point their ``edgesplit.commands`` entry points at such entries too (see
``edgesplit.codegen.commands``); a plain ``register`` function is still accepted there.
"""
import importlib
from typing import Any


class LazyCommand:
    def __init__(self, name: str, module: str, help: str) -> None:
        self.name = name
        self.module = module
        self.help = help

    def __call__(self, commands: Any) -> None:
        """Build the command's full parser in ``commands`` (argparse's subparsers action)."""
        importlib.import_module(self.module).register(commands)

    def list_in(self, commands: Any) -> None:
        """Only a line in the command list; never parsed (the full parser is built when asked)."""
        commands.add_parser(self.name, help=self.help, add_help=False)
