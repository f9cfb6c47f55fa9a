"""The `nsr-tune` command: data, train, evaluate, tune, pareto, sync-mlflow.

Entry point side effects live here: logging set-up, reading data, writing files. Errors a user
can cause come out as one line on stderr and exit status 2; anything else is a bug and keeps
its traceback. One module per command group: _data, _model (train, evaluate), _study.
"""

from __future__ import annotations

from nsr_tune.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
