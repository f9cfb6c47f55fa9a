"""nsr-tune: hyperparameter studies of the adversarial robustness of ECG beat classifiers.

The library is organised one concern per subpackage: `data`, `models`, `objectives`,
`attacks`, `evaluation`, `trial` (one trial, plain torch), `study` (Ray Tune) and `tracking`
(MLflow). Importing `nsr_tune` itself loads none of them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("nsr-tune")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
