"""What a study left in its Tune experiment directory, read back as plain data.

Tune keeps every trial's config (`params.json`) and every report (`result.json`, one JSON object
per line) next to its checkpoints; the runner adds `nsr_tune_study.json` with what MLflow's
parent run needs. That is enough to rebuild the MLflow side of a study at any time, which is
how results measured while the tracking server was down reach it later.
"""

from __future__ import annotations

import json

import pyarrow.fs

from nsr_tune.errors import ConfigError
from nsr_tune.record import StudyDescription, StudyRecord, TrialRecord

__all__ = ["STUDY_FILE", "read_description", "read_study", "write_study_file"]

STUDY_FILE = "nsr_tune_study.json"


def _fs(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    try:
        return pyarrow.fs.FileSystem.from_uri(path)
    except (pyarrow.ArrowInvalid, OSError) as e:
        raise ConfigError(f"{path}: cannot open this study path: {e}") from e


def write_study_file(experiment_path: str, description: StudyDescription) -> None:
    fs, root = _fs(experiment_path)
    fs.create_dir(root, recursive=True)
    # Written once, when the study starts; a resume only reads it.
    with fs.open_output_stream(f"{root}/{STUDY_FILE}") as f:
        f.write(json.dumps(description.to_dict(), indent=2).encode())


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
