"""`seisflows-eara`: commands that work outside a SeisFlows run (documentation, checks, tools).

Each subcommand lives in its own module and registers itself in COMMANDS as
(name, help, add_arguments(parser), run(args) -> int).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from seisflows_eara import params

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _par_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", nargs="?", help="an EARA parameter name; omit to list them all")
    p.add_argument("--config", help="parameters.yaml to read the current value from")


def _par_run(a: argparse.Namespace) -> int:
    """Print documentation, unit, default (and current value) of EARA parameters."""
    if a.key is None:
        for p in params.PARAMETERS:
            print(f"{p.name:30s} [{p.unit}] ({p.component}) {p.doc}")
        return 0
    p = params.BY_NAME.get(a.key.lower())
    if p is None:
        print(f"error: '{a.key}' is not an EARA parameter; `seisflows-eara par` lists them",
              file=sys.stderr)
        return 2
    print(f"{p.name} ({p.component}, unit: {p.unit})\n  {p.doc}\n  default: {p.default!r}")
    if a.config:
        print(f"  value in {a.config}: {params.load_parameters(a.config, False)[p.name]!r}")
    return 0


COMMANDS: list[Command] = [
    ("par", "document EARA parameters (unit, default, meaning)", _par_args, _par_run),
]


def _register_optional() -> None:
    """Import the modules that add subcommands (they append to COMMANDS)."""
    import importlib
    for mod in ("measure", "estimate", "plot", "demo", "direction"):
        try:
            importlib.import_module(f"seisflows_eara.commands.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"seisflows_eara.commands.{mod}":
                raise


def main(argv: list[str] | None = None) -> int:
    _register_optional()
    parser = argparse.ArgumentParser(prog="seisflows-eara", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runners = {}
    for name, help_, add, run in COMMANDS:
        add(sub.add_parser(name, help=help_, description=help_))
        runners[name] = run
    args = parser.parse_args(argv)
    try:
        return runners[args.command](args)
    except params.ParameterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
