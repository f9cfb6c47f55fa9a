"""The parser of every `nsr-tune` command, and the entry point that runs one."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from nsr_tune.cli import _data, _model, _study
from nsr_tune.errors import NsrTuneError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nsr-tune", description="Adversarial robustness studies of ECG beat classifiers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (_data, _model, _study):
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
        return int(args.func(args))
    except NsrTuneError as e:
        print(f"nsr-tune: error: {e}", file=sys.stderr)
        return 2
