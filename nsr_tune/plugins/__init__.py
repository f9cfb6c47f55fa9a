"""Plugins: models, objectives and datasets from other packages, by name.

A plugin is named in one of two ways, wherever a built-in name is accepted (a search space, the
command line):

- an entry point name: a package declares, in its pyproject.toml,
  `[project.entry-points."nsr_tune.objectives"] lipschitz = "mypkg.reg:lipschitz"`;
- a reference `package.module:attribute`, for code that is importable but not installed
  (`--plugin-path DIR` puts a directory on the path, here and on every Ray worker).

This package only finds and imports them and says where they came from (`Plugin`: the
distribution, its version, and a hash of the source). What a model, an objective or a dataset
must offer is checked by its own registry: nsr_tune.models, nsr_tune.objectives, nsr_tune.data.
"""

from __future__ import annotations

from nsr_tune.plugins._loader import (
    GROUPS,
    Plugin,
    add_plugin_path,
    entry_point_names,
    is_reference,
    load_plugin,
    plugin_modules,
)

__all__ = [
    "GROUPS",
    "Plugin",
    "add_plugin_path",
    "entry_point_names",
    "is_reference",
    "load_plugin",
    "plugin_modules",
]
