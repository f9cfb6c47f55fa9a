"""What a study left in its Tune experiment directory, read back as plain data.

Tune keeps every trial's config (`params.json`) and every report (`result.json`, one JSON object
per line) next to its checkpoints; the runner adds `nsr_tune_study.json` with what MLflow's
parent run needs. That is enough to rebuild the MLflow side of a study at any time, which is
how results measured while the tracking server was down reach it later.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs

from nsr_tune._io import strict_json
from nsr_tune.errors import ConfigError
from nsr_tune.results.record import StudyDescription, StudyRecord, TrialRecord

__all__ = [
    "FINAL_DIR",
    "RUNGS_FILE",
    "STUDY_FILE",
    "checkpoint_reader",
    "is_uri",
    "latest_checkpoint",
    "latest_final_settings",
    "read_bytes",
    "read_description",
    "read_finals",
    "read_rungs",
    "read_study",
    "study_dir",
    "study_path",
    "write_final",
    "write_rungs",
    "write_study_file",
]

STUDY_FILE = "nsr_tune_study.json"
# The finalists' second evaluations: FINAL_DIR/<settings fingerprint>/<trial id>.json, one file
# per finalist, written by the task that evaluated it (so a killed finalize loses nothing done).
FINAL_DIR = "final"
# The early-stopping scheduler's rung record (nsr_tune.study.moasha.Rungs.to_dict) as one JSON
# line, rewritten after every decision, so that a restarted driver judges later trials against
# the same rungs. Not `.json`: on restore Tune copies every .json and .pkl file of the experiment
# into its staging directory and later uploads them back, which would put the record as it was at
# the restart over every decision made since.
RUNGS_FILE = "moasha_rungs.jsonl"


def is_uri(path: str) -> bool:
    """Cloud storage (s3://, gs://, ...), as opposed to a local path or a file:// URI."""
    scheme = urlparse(path).scheme
    return len(scheme) > 1 and scheme != "file"  # a Windows drive letter is not a scheme


def study_path(path: str) -> str:
    """A study's path as the study itself records it: a URI (s3://, gs://) as given, a local path
    (relative, ~, or file://) absolute. The MLflow parent run is found by this string."""
    if is_uri(path):
        return path
    local = urlparse(path).path if path.startswith("file://") else path
    return str(Path(local).expanduser().resolve())


def study_dir(storage: str, name: str) -> str:
    """Where Tune keeps the study `name` under `storage` (its STORAGE/NAME), as `study_path` writes it."""
    return f"{storage.rstrip('/')}/{name}" if is_uri(storage) else str(Path(study_path(storage)) / name)


def _fs(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    path = study_path(path)  # pyarrow takes only absolute local paths
    try:
        return pyarrow.fs.FileSystem.from_uri(path)
    except (pyarrow.ArrowInvalid, OSError) as e:
        raise ConfigError(f"{path}: cannot open this study path: {e}") from e


def write_study_file(experiment_path: str, description: StudyDescription) -> None:
    fs, root = _fs(experiment_path)
    fs.create_dir(root, recursive=True)
    # Written once, when the study starts; a resume only reads it.
    with fs.open_output_stream(f"{root}/{STUDY_FILE}") as f:
        f.write(strict_json(description.to_dict(), indent=2).encode())


def read_description(experiment_path: str) -> StudyDescription:
    """The study's description alone (cheap: no trial is read)."""
    fs, root = _fs(experiment_path)
    text = _read_text(fs, f"{root}/{STUDY_FILE}")
    if text is None:
        raise ConfigError(f"{experiment_path}: no nsr-tune study here ({STUDY_FILE} is missing)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{experiment_path}/{STUDY_FILE}: not valid JSON: {e}") from e
    return StudyDescription.from_dict(data, where=f"{experiment_path}/{STUDY_FILE}")


def _read_text(fs: pyarrow.fs.FileSystem, path: str) -> str | None:
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def read_study(experiment_path: str) -> StudyRecord:
    experiment_path = study_path(experiment_path)
    description = read_description(experiment_path)
    fs, root = _fs(experiment_path)
    trials = []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(root)):
        if info.type != pyarrow.fs.FileType.Directory or not info.base_name.startswith("trial_"):
            continue
        params = _read_text(fs, f"{info.path}/params.json")
        if params is None:
            continue  # created but never started
        lines = (_read_text(fs, f"{info.path}/result.json") or "").splitlines()
        results = tuple(json.loads(line) for line in lines if line.strip())
        error = _read_text(fs, f"{info.path}/error.txt")
        trial_id = info.base_name.removeprefix("trial_")
        trials.append(
            TrialRecord(
                trial_id=trial_id,
                config=json.loads(params)["trial_config"],
                results=results,
                error=error.strip().splitlines()[-1][:500] if error and error.strip() else None,
            )
        )
    return StudyRecord(experiment_path, description, tuple(sorted(trials, key=lambda t: t.trial_id)))


def latest_checkpoint(experiment_path: str, trial_id: str, file_name: str) -> str | None:
    """The path of `file_name` in a trial's newest checkpoint directory, or None without one."""
    fs, root = _fs(experiment_path)
    selector = pyarrow.fs.FileSelector(f"{root}/trial_{trial_id}", allow_not_found=True)
    dirs = sorted(
        info.path
        for info in fs.get_file_info(selector)
        if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_")
    )
    for d in reversed(dirs):
        if fs.get_file_info(f"{d}/{file_name}").type == pyarrow.fs.FileType.File:
            return _join(experiment_path, root, f"{d}/{file_name}")
    return None


def _join(experiment_path: str, root: str, path: str) -> str:
    """`path` (as pyarrow names it) in the form of `experiment_path` (a URI stays a URI)."""
    return experiment_path.rstrip("/") + path[len(root.rstrip("/")) :]


def checkpoint_reader(experiment_path: str, file_name: str) -> Callable[[str], bytes | None]:
    """trial id -> the bytes of `file_name` in its newest checkpoint (None without one)."""

    def read(trial_id: str) -> bytes | None:
        path = latest_checkpoint(experiment_path, trial_id, file_name)
        return None if path is None else read_bytes(path)

    return read


def read_bytes(path: str) -> bytes:
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def write_final(experiment_path: str, settings: str, trial_id: str, data: dict) -> None:
    """One finalist's result; written to a temporary name first, so no reader sees half a file."""
    fs, root = _fs(experiment_path)
    folder = f"{root}/{FINAL_DIR}/{settings}"
    fs.create_dir(folder, recursive=True)
    tmp = f"{folder}/.{trial_id}.json.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(strict_json(data, indent=1).encode())
    fs.move(tmp, f"{folder}/{trial_id}.json")


def latest_final_settings(experiment_path: str) -> str | None:
    """The settings fingerprint whose final results were written last, or None."""
    fs, root = _fs(experiment_path)
    selector = pyarrow.fs.FileSelector(f"{root}/{FINAL_DIR}", allow_not_found=True, recursive=True)
    files = [
        i
        for i in fs.get_file_info(selector)
        if i.type == pyarrow.fs.FileType.File and i.base_name.endswith(".json")
    ]
    if not files:
        return None
    newest = max(files, key=lambda i: i.mtime_ns or 0)
    return newest.path.rsplit("/", 2)[-2]


def read_finals(experiment_path: str, settings: str) -> dict[str, dict]:
    """Trial id -> the final result kept for these settings (nothing when none is)."""
    fs, root = _fs(experiment_path)
    selector = pyarrow.fs.FileSelector(f"{root}/{FINAL_DIR}/{settings}", allow_not_found=True)
    out = {}
    for info in fs.get_file_info(selector):
        if info.type == pyarrow.fs.FileType.File and info.base_name.endswith(".json"):
            if info.base_name.startswith("."):
                continue  # a write that did not finish
            text = _read_text(fs, info.path)
            try:
                out[info.base_name.removesuffix(".json")] = json.loads(text or "")
            except json.JSONDecodeError as e:
                raise ConfigError(
                    f"{info.path}: a damaged final result ({e}); delete it to evaluate again"
                ) from e
    return out


def write_rungs(experiment_path: str, data: dict) -> None:
    """The scheduler's rung record; written to a temporary name and moved, so a driver killed
    mid-write leaves the previous record whole."""
    fs, root = _fs(experiment_path)
    fs.create_dir(root, recursive=True)
    tmp = f"{root}/.{RUNGS_FILE}.tmp"
    with fs.open_output_stream(tmp) as f:
        f.write((strict_json(data) + "\n").encode())
    fs.move(tmp, f"{root}/{RUNGS_FILE}")


def read_rungs(experiment_path: str) -> dict | None:
    """The rung record kept beside the study, or None before the first decision."""
    fs, root = _fs(experiment_path)
    text = _read_text(fs, f"{root}/{RUNGS_FILE}")
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{experiment_path}/{RUNGS_FILE}: not valid JSON: {e}") from e
