"""Subcommands: importing a module registers its commands on `harness.cli.cli`."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
