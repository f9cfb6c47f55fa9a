"""The Ray cluster-launcher configs in cluster/: Ray's own validation plus nsr-tune's rules.

Nothing here launches or connects to anything: `ray up`'s offline steps only.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
CONFIGS = ["config.yaml", "local.yaml"]

_spec = importlib.util.spec_from_file_location("nsr_cluster_validate", CLUSTER / "validate.py")
assert _spec is not None and _spec.loader is not None
validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(validate)


@pytest.fixture(scope="module", params=CONFIGS)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def raw(name: str) -> dict:
    return validate.load_cluster_config(CLUSTER / name)


@pytest.fixture(scope="module")
def prepared(raw: dict) -> dict:
    return validate.ray_validate(raw)


def _start_commands(config: dict) -> list[str]:
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


def _all_commands(config: dict) -> list[str]:
    keys = ("setup_commands", "head_setup_commands", "worker_setup_commands")
    return [c for key in keys for c in config[key]] + _start_commands(config)


def test_passes_rays_validation_and_ours(name: str) -> None:
    assert validate.check_file(CLUSTER / name) == []


def test_command_line_prints_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main([str(CLUSTER / n) for n in CONFIGS]) == 0
    out = capsys.readouterr().out
    assert out.count("OK: ") == len(CONFIGS)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_every_command_is_valid_bash(prepared: dict) -> None:
    # The YAML folds long commands into one line; a folding slip shows up as a syntax error here.
    for cmd in _all_commands(prepared) + prepared["initialization_commands"]:
        r = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, f"{cmd}\n{r.stderr}"


def test_mlflow_binds_loopback_only(prepared: dict) -> None:
    servers = [c for c in prepared["head_start_ray_commands"] if "mlflow server" in c]
    assert len(servers) == 1
    assert re.search(r"--host 127\.0\.0\.1 --port 5000\b", servers[0])
    assert "--backend-store-uri sqlite:///$HOME/" in servers[0]
    # Idempotent: only started when nothing answers on the port yet.
    assert "curl -sf http://127.0.0.1:5000/health" in servers[0]
    assert not any("mlflow server" in c for c in prepared["worker_start_ray_commands"])
    assert not any("0.0.0.0" in c for c in _all_commands(prepared))


def test_aws_artifacts_outlive_the_head() -> None:
    config = validate.load_cluster_config(CLUSTER / "config.yaml")
    server = next(c for c in config["head_start_ray_commands"] if "mlflow server" in c)
    assert "--artifacts-destination s3://" in server


def test_mlflow_starts_after_ray(prepared: dict) -> None:
    cmds = prepared["head_start_ray_commands"]
    order = [
        i for i, c in enumerate(cmds) if "ray stop" in c or "ray start --head" in c or "mlflow server" in c
    ]
    assert [("stop" in cmds[i], "--head" in cmds[i], "mlflow" in cmds[i]) for i in order] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


def test_project_mounted_and_installed_on_every_node(prepared: dict) -> None:
    assert prepared["file_mounts"]["~/nsr-tune"] == "."
    for pattern in ("/.venv", "/.git", "/runs", "mlflow.db", "__pycache__"):
        assert pattern in prepared["rsync_exclude"]
    # After prepare_config, head_/worker_setup_commands are what each node type really runs.
    for key, torch_line in (
        ("head_setup_commands", "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"),
        ("worker_setup_commands", "pip install torch==2.13.0"),
    ):
        cmds = prepared[key]
        install = [i for i, c in enumerate(cmds) if re.search(r"pip install -e ~/nsr-tune\b", c)]
        assert len(install) == 1, key
        assert '"ray[default,tune]==2.60.0"' in cmds[install[0]]
        # torch first, so `pip install -e` keeps the build chosen for the node.
        assert cmds.index(torch_line) < install[0], key
    assert "nsr-tune data download" in prepared["head_setup_commands"]
    assert "nsr-tune data download" not in prepared["worker_setup_commands"]


def test_gpu_workers_and_a_cpu_head() -> None:
    config = validate.ray_validate(validate.load_cluster_config(CLUSTER / "config.yaml"))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"]["GPU"] == 0 and head["resources"]["CPU"] > 0
    assert head["max_workers"] == 0
    assert types["gpu_worker"]["resources"] == {"CPU": 4, "GPU": 1}
    assert (
        types["gpu_worker"]["min_workers"] == 0 <= types["gpu_worker"]["max_workers"] <= config["max_workers"]
    )
    assert config["cluster_name"] == "nsr-tune"
    assert config["provider"]["type"] == "aws"


def test_local_cluster_shape() -> None:
    config = validate.ray_validate(validate.load_cluster_config(CLUSTER / "local.yaml"))
    assert config["provider"]["type"] == "local"
    assert config["max_workers"] == len(config["provider"]["worker_ips"])
    head_start = next(c for c in config["head_start_ray_commands"] if "ray start --head" in c)
    assert "--num-gpus=0" in head_start  # the head has CPU torch
    server = next(c for c in config["head_start_ray_commands"] if "mlflow server" in c)
    assert "--artifacts-destination /mnt/nfs/" in server


def test_token_auth_on_in_every_ray_start(prepared: dict) -> None:
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in prepared[key] if "ray start" in c]
        assert len(starts) == 1, key
        assert re.search(r"\bRAY_AUTH_MODE=token ray start\b", starts[0]), key
    head = prepared["head_start_ray_commands"]
    gen = next(i for i, c in enumerate(head) if "ray get-auth-token --generate" in c)
    start = next(i for i, c in enumerate(head) if "ray start --head" in c)
    assert gen < start  # `ray start` with RAY_AUTH_MODE=token refuses to run without a token
    assert "> /dev/null" in head[gen]  # the token is printed on stdout: keep it out of logs
    assert "chmod 600 ~/.ray/auth_token" in head[gen]
    # Workers get the head's token; every shell on a node sends it.
    assert prepared["cluster_synced_files"] == ["~/.ray/auth_token"]
    assert any("echo 'export RAY_AUTH_MODE=token' >> ~/.bashrc" in c for c in prepared["setup_commands"])


def test_no_secrets_in_the_files(name: str) -> None:
    text = (CLUSTER / name).read_text()
    assert validate.secret_problems(text) == []
    assert not re.search(r"aws_secret_access_key|aws_access_key_id|RAY_AUTH_TOKEN=", text, re.I)
    assert not re.search(r"\b[0-9a-f]{32,}\b", text)  # a generated Ray token is 64 hex digits


@pytest.mark.parametrize(
    "line",
    [
        "      aws_secret_access_key: abc",
        "  - export RAY_AUTH_TOKEN=0123abcd",
        "  - export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP",
        "  - echo " + "ab12" * 16 + " > ~/.ray/auth_token",
    ],
)
def test_secret_scan_catches(line: str) -> None:
    assert validate.secret_problems(line)


@pytest.mark.parametrize(
    ("text", "key", "where"),
    [
        ("available_node_types:", "availabe_node_types", "top level"),
        ("    min_workers: 0\n    max_workers: 4", "min_worker", "available_node_types.gpu_worker"),
        ("  ssh_user: ubuntu", "ssh_usr", "auth"),
        ("head_start_ray_commands:", "head_start_ray_comands", "top level"),
    ],
)
def test_typo_fails_naming_the_key(tmp_path: Path, text: str, key: str, where: str) -> None:
    source = (CLUSTER / "config.yaml").read_text()
    assert text in source
    # Misspell the first key of `text` (for the node type: its min_workers, inside gpu_worker).
    original = text.strip().split(":")[0]
    bad = source.replace(text, text.replace(original, key, 1), 1)
    path = tmp_path / "typo.yaml"
    path.write_text(bad)
    with pytest.raises(validate.ClusterConfigError) as err:
        validate.ray_validate(validate.load_cluster_config(path))
    assert f"'{key}'" in str(err.value)
    assert str(err.value).startswith(f"{where}:")
    problems = validate.check_file(path)
    assert problems and key in problems[0]


def test_typo_in_local_config_fails(tmp_path: Path) -> None:
    source = (CLUSTER / "local.yaml").read_text()
    path = tmp_path / "typo.yaml"
    path.write_text(source.replace("\nfile_mounts:", "\nfile_mount:", 1))
    with pytest.raises(validate.ClusterConfigError, match="'file_mount' was unexpected"):
        validate.ray_validate(validate.load_cluster_config(path))


def test_command_line_reports_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text((CLUSTER / "config.yaml").read_text().replace("\nmax_workers:", "\nmax_worker:", 1))
    assert validate.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"ERROR: {path}: ") and "'max_worker'" in out


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("--host 127.0.0.1", "--host 0.0.0.0", "127.0.0.1"),
        ("RAY_AUTH_MODE=token ray start --address", "ray start --address", "RAY_AUTH_MODE=token"),
        ("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0", "0.0.0.0"),
        ("pip install -e ~/nsr-tune", "pip install ~/nsr-tune/dist/x.whl", "not pip-installed"),
    ],
)
def test_policy_catches_unsafe_edits(prepared: dict, old: str, new: str, complaint: str) -> None:
    config = copy.deepcopy(prepared)
    for key in (
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ):
        config[key] = [c.replace(old, new) for c in config[key]]
    problems = validate.policy_problems(config)
    assert any(complaint in p for p in problems), problems


def test_policy_needs_the_synced_token(prepared: dict) -> None:
    config = copy.deepcopy(prepared)
    config["cluster_synced_files"] = []
    assert any("auth_token" in p for p in validate.policy_problems(config))


def test_yaml_anchor_shares_the_install_line(name: str) -> None:
    # One pip line for head and workers: they must get the same package versions.
    raw = yaml.safe_load((CLUSTER / name).read_text())
    head = [c for c in raw["head_setup_commands"] if "pip install -e" in c]
    worker = [c for c in raw["worker_setup_commands"] if "pip install -e" in c]
    assert head == worker and len(head) == 1
