"""Finding a plugin by name, importing it, and saying which code it is.

Which code a study ran is part of its result: a plugin's distribution, version and source hash
go into every trial's config (and so into MLflow and the checkpoints), and a resume or a Ray
worker that finds other code under the same name refuses it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsr_tune.errors import ConfigError, PluginError

__all__ = [
    "GROUPS",
    "Plugin",
    "add_plugin_path",
    "entry_point_names",
    "is_reference",
    "load_plugin",
    "plugin_modules",
]

#: The entry-point group of each kind of plugin.
GROUPS = {"model": "nsr_tune.models", "objective": "nsr_tune.objectives", "dataset": "nsr_tune.datasets"}


@dataclass(frozen=True)
class Plugin:
    """A plugin found and imported: what it is called, where it lives, and which code it is."""

    kind: str  # model, objective or dataset
    name: str  # as the user gave it: an entry point name or `package.module:attribute`
    target: str  # `package.module:attribute`
    obj: Any
    distribution: str  # the installed distribution that holds the module ("" for none)
    version: str  # its version ("" for none)
    sha256: str  # of the .py files of the module's top-level package (see `source_hash`)

    def provenance(self) -> dict[str, str]:
        """What a trial config, MLflow and a resume record of it."""
        return {
            "name": self.name,
            "target": self.target,
            "distribution": self.distribution,
            "version": self.version,
            "sha256": self.sha256,
        }


def is_reference(name: str) -> bool:
    """`package.module:attribute`, as opposed to a registry or entry-point name."""
    module, sep, attr = name.partition(":")
    return bool(sep) and bool(module) and bool(attr) and all(p.isidentifier() for p in module.split("."))


@functools.lru_cache(maxsize=16)
def _entry_points(group: str, path: tuple[str, ...]) -> tuple[importlib.metadata.EntryPoint, ...]:
    """The entry points of `group`, which reads every installed package's metadata: once per
    import path (`path`, the cache key), not once per lookup."""
    return tuple(importlib.metadata.entry_points(group=group))


def entry_point_names(kind: str) -> tuple[str, ...]:
    """The names installed packages offer for `kind`, sorted."""
    return tuple(sorted({ep.name for ep in _entry_points(GROUPS[kind], tuple(sys.path))}))


def _entry_point(kind: str, name: str) -> str:
    found = [ep for ep in _entry_points(GROUPS[kind], tuple(sys.path)) if ep.name == name]
    if not found:
        return ""
    targets = sorted({ep.value for ep in found})
    if len(targets) > 1:
        raise PluginError(
            f"{kind} {name!r}: two installed packages offer this name ({', '.join(targets)}); "
            "name the one you mean as package.module:attribute"
        )
    return targets[0]


@functools.lru_cache(maxsize=8)
def _packages_distributions(path: tuple[str, ...]) -> dict[str, list[str]]:
    """importlib's map of top-level modules to distributions, which reads every installed
    package's file list: once per import path (`path`, the cache key), not once per lookup."""
    return dict(importlib.metadata.packages_distributions())


def _distribution(module: str) -> tuple[str, str]:
    top = module.split(".")[0]
    names = _packages_distributions(tuple(sys.path)).get(top, [])
    if not names:
        return "", ""
    return names[0], importlib.metadata.version(names[0])


def source_hash(module: Any) -> str:
    """sha256 over the .py files of the module's top-level package, by path relative to it
    (a single-file module: that file). A helper the plugin imports from its own package counts."""
    top = sys.modules[module.__name__.split(".")[0]]
    paths = list(getattr(top, "__path__", []))
    h = hashlib.sha256()
    if paths:
        root = Path(paths[0])
        files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
        for p in files:
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    else:
        h.update(Path(top.__file__).read_bytes())
    return h.hexdigest()


def load_plugin(kind: str, name: str, *, builtins: Sequence[str] = ()) -> Plugin:
    """The plugin `name` of `kind`: an entry point of GROUPS[kind], or `package.module:attribute`.

    Raises PluginError, naming the plugin, when it cannot be found or imported. Its contract is
    checked by the registry that asked for it; `builtins` are its own names, for the message.
    """
    if kind not in GROUPS:
        raise ValueError(f"no plugin kind {kind!r}")  # a programming error
    target = name if is_reference(name) else _entry_point(kind, name)
    if not target:
        offered = entry_point_names(kind)
        raise PluginError(
            f"{kind}: unknown {kind} {name!r}; choose one of {', '.join(builtins)}, an installed plugin "
            f"({GROUPS[kind]}: {', '.join(offered) or 'none installed'}), or package.module:attribute"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise PluginError(
            f"{kind} {name!r}: cannot import {module_name} ({e}); install its package, or give "
            "--plugin-path DIR for a local one"
        ) from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{kind} {name!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    distribution, version = _distribution(module_name)
    return Plugin(kind, name, target, obj, distribution, version, source_hash(module))


def add_plugin_path(directory: str | Path) -> Path:
    """Put `directory` first on this process's import path (`--plugin-path`); Ray's workers get
    it through `plugin_modules`."""
    path = Path(directory).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"--plugin-path: {directory} is not a directory")
    if not plugin_modules(path):
        raise ConfigError(f"--plugin-path: {directory} holds no Python package or module")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    importlib.invalidate_caches()
    return path


def plugin_modules(directory: str | Path) -> list[str]:
    """The packages (directories with .py files) and modules (.py files) at the top of
    `directory`, for Ray's `runtime_env={"py_modules": ...}`."""
    root = Path(directory)
    out = []
    for p in sorted(root.iterdir()):
        if p.name.startswith((".", "_")):  # hidden, private, __pycache__
            continue
        if p.is_dir() and p.name.isidentifier() and any(p.rglob("*.py")):
            out.append(str(p))
        elif p.suffix == ".py" and p.stem.isidentifier():
            out.append(str(p))
    return out
