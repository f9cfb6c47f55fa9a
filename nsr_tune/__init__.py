"""nsr-tune: hyperparameter studies of the adversarial robustness of ECG beat classifiers.

One concern per module or subpackage, dependencies pointing one way (docs/development.md):
`config` (a trial's configuration, plain data) and `protocol` (the named evaluation protocols);
`data`, `models`, `objectives` and `attacks` (registries of names); `evaluation` (a model under
attack); `trial` (one trial, plain torch); `results` (a study's results, numpy only) and `plots`
(its figures); `study` (Ray Tune), `tracking` (MLflow) and `cli`. Importing `nsr_tune` itself
loads none of them.
"""

from __future__ import annotations

from nsr_tune._version import __version__

__all__ = ["__version__"]
