"""Errors a user can cause. The CLI turns them into one line and a non-zero exit.

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "NsrTuneError", "PluginError", "SpaceError"]


class NsrTuneError(Exception):
    """Base class of every error caused by user input."""


class DataError(NsrTuneError):
    """A data directory, record or file that cannot be used, named in the message."""


class ConfigError(NsrTuneError, ValueError):
    """A configuration value that is out of range or of the wrong kind, named in the message."""


class CheckpointError(NsrTuneError):
    """A checkpoint or model file that is not one of ours, or is damaged."""


class SpaceError(NsrTuneError):
    """A search-space file that cannot be used; the message names the file and the key."""


class PluginError(ConfigError):
    """A plugin (a model, objective or dataset from another package) that cannot be loaded or
    breaks its contract; the message names the plugin and what is missing."""
