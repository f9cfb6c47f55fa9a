"""Check a Ray cluster-launcher config the way `ray up` does, without launching anything.

    python cluster/validate.py cluster/config.yaml cluster/local.yaml

Two layers, both offline (no cloud account, no SSH):

1. Ray's own checks, the steps `ray up` runs before it talks to a cloud
   (`ray.autoscaler._private.commands._bootstrap_config`): `prepare_config` merges the file with
   the provider's defaults, `validate_config` checks it against Ray's JSON schema
   (ray/autoscaler/ray-schema.json) and cross-checks node types and worker counts. A misspelt key
   fails here, and the message names it and where it is.
2. nsr-tune's rules: MLflow and the dashboard bound to 127.0.0.1 (never 0.0.0.0), Ray token
   authentication on in every `ray start`, the project mounted and pip-installed, and no
   secret-looking lines.

Not checked: provider-specific `node_config` contents (an AWS typo there fails at `ray up`).
Prints "OK: PATH" per good file, else the problems; exits 1 if any file has a problem.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT_MOUNT = "~/nsr-tune"
# What a leaked secret looks like. The configs may name where a secret lives (a key file path,
# an environment variable) but never hold one.
SECRET_PATTERNS = {
    "an AWS secret key setting": re.compile(r"aws_secret_access_key|aws_session_token", re.I),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a literal Ray auth token": re.compile(r"RAY_AUTH_TOKEN\s*[=:]\s*['\"]?[^\s'\"$]"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a password": re.compile(r"password\s*[=:]\s*\S", re.I),
    "a long hex string (a token?)": re.compile(r"\b[0-9a-f]{32,}\b", re.I),
}


class ClusterConfigError(ValueError):
    """The config fails Ray's validation; the message names the offending key."""


def load_cluster_config(path: str | Path) -> dict[str, Any]:
    """The YAML file as a dict, as `ray up` reads it (yaml.safe_load)."""
    text = Path(path).read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ClusterConfigError(f"not valid YAML: {e}") from e
    if not isinstance(config, dict):
        raise ClusterConfigError("the file must hold a mapping (cluster_name: ..., provider: ...)")
    return config


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """Run Ray's offline `ray up` checks; return the prepared config (defaults merged in).

    Raises ClusterConfigError whose message starts with the location of the bad key, e.g.
    "available_node_types.gpu_worker: Additional properties are not allowed ('min_worker' ...)".
    """
    import click
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    if "type" not in config.get("provider", {}):
        raise ClusterConfigError("provider: 'type' is a required property")
    try:
        prepared = prepare_config(copy.deepcopy(config))
        validate_config(prepared)
    except jsonschema.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path) or "top level"
        raise ClusterConfigError(f"{where}: {e.message}") from None
    except (ValueError, RuntimeError, KeyError, click.ClickException) as e:
        message = e.format_message() if isinstance(e, click.ClickException) else str(e)
        raise ClusterConfigError(message) from None
    return prepared


def _commands(config: dict[str, Any], key: str) -> list[str]:
    return [str(c) for c in config.get(key) or []]


def policy_problems(config: dict[str, Any]) -> list[str]:
    """nsr-tune's rules for a (prepared or raw) cluster config; [] when all hold."""
    problems: list[str] = []
    keys = (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    every = [c for key in keys for c in _commands(config, key)]
    for node_type in (config.get("available_node_types") or {}).values():
        every += [str(c) for c in node_type.get("worker_setup_commands") or []]

    head_start = _commands(config, "head_start_ray_commands")
    worker_start = _commands(config, "worker_start_ray_commands")

    if any("0.0.0.0" in c for c in every):
        problems.append("a command binds or refers to 0.0.0.0: keep every service on 127.0.0.1")
    mlflow = [c for c in head_start if "mlflow server" in c]
    if not mlflow:
        problems.append("head_start_ray_commands: no `mlflow server` command")
    for c in mlflow:
        if not re.search(r"(?:--host|-h)[ =]127\.0\.0\.1\b", c):
            problems.append("head_start_ray_commands: `mlflow server` must bind --host 127.0.0.1")
    for key, cmds in (("head_start_ray_commands", head_start), ("worker_start_ray_commands", worker_start)):
        starts = [c for c in cmds if "ray start" in c]
        if not starts:
            problems.append(f"{key}: no `ray start` command")
        for c in starts:
            if not re.search(r"\bRAY_AUTH_MODE=token\s+ray start\b", c):
                problems.append(f"{key}: `ray start` without RAY_AUTH_MODE=token (token auth off)")
            if "--head" in c and "--dashboard-host=127.0.0.1" not in c:
                problems.append(f"{key}: the dashboard must bind --dashboard-host=127.0.0.1")
    if "~/.ray/auth_token" not in (config.get("cluster_synced_files") or []):
        problems.append("cluster_synced_files: ~/.ray/auth_token missing (workers need the head's token)")

    if PROJECT_MOUNT not in (config.get("file_mounts") or {}):
        problems.append(f"file_mounts: the project is not mounted at {PROJECT_MOUNT}")
    install = re.compile(r"\bpip install\b[^;&|]*\s-e\s+" + re.escape(PROJECT_MOUNT) + r"(?=[\s\[\"']|$)")
    setup = _commands(config, "setup_commands")
    for key in ("head_setup_commands", "worker_setup_commands"):
        if not any(install.search(c) for c in setup + _commands(config, key)):
            problems.append(f"{key}: the project is not pip-installed (pip install -e {PROJECT_MOUNT})")
    return problems


def secret_problems(text: str) -> list[str]:
    """Lines of the raw file (comments included) that look like a secret."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for what, pattern in SECRET_PATTERNS.items():
            if pattern.search(line):
                problems.append(f"line {number}: looks like {what}")
    return problems


def check_file(path: str | Path) -> list[str]:
    """Every problem with one config file: Ray's validation first, then nsr-tune's rules."""
    try:
        config = load_cluster_config(path)
    except (OSError, ClusterConfigError) as e:
        return [str(e)]
    problems = secret_problems(Path(path).read_text())
    try:
        prepared = ray_validate(config)
    except ClusterConfigError as e:
        return [f"Ray's validation: {e}", *problems]
    return problems + policy_problems(prepared)


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python cluster/validate.py CONFIG.yaml [CONFIG.yaml ...]", file=sys.stderr)
        return 2
    failed = False
    for path in paths:
        problems = check_file(path)
        if problems:
            failed = True
            for problem in problems:
                print(f"ERROR: {path}: {problem}")
        else:
            print(f"OK: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
