"""The parser of every `nsr-tune` command, and the entry point that runs one."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from nsr_tune._version import __version__
from nsr_tune.cli import _data, _model, _results, _study
from nsr_tune.cli._common import Parser, examples
from nsr_tune.errors import NsrTuneError
from nsr_tune.plugins import add_plugin_path

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nsr-tune",
        description="Adversarial robustness studies of ECG beat classifiers: train and attack one model, "
        "or search architectures and NSR weights on Ray Tune with Optuna, tracked in MLflow.",
        epilog=examples(
            "nsr-tune train --data-dir bundled --epochs 2 --out runs/cnn-ce",
            "nsr-tune tune --dry-run",
        ),
    )
    parser.add_argument("--version", action="version", version=f"nsr-tune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (_data, _model, _study, _results):
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # for the exact command that continues an interrupted run
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # A tracking server that is down should cost seconds, not MLflow's default of minutes of
    # retries per call: the study keeps its results and writes them when the server is back.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    try:
        for directory in getattr(args, "plugin_path", None) or ():
            add_plugin_path(directory)
        return int(args.func(args))
    except NsrTuneError as e:
        print(f"nsr-tune: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        note = getattr(args, "on_interrupt", "nothing was kept")
        print(f"\nnsr-tune: interrupted; {note}", file=sys.stderr)
        return 130
