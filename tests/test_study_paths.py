"""A study is named by its path wherever the user stands: a local path (relative, with ~, or
file://) means the same study as its absolute form, which is what the study records and how its
MLflow parent run is found; a cloud URI stays as given."""

from __future__ import annotations

import pytest

from nsr_tune.errors import ConfigError
from nsr_tune.study.results import read_study, study_dir, study_path


def test_local_paths_become_absolute_and_uris_stay(tmp_path, monkeypatch):
    here = tmp_path.resolve()
    monkeypatch.chdir(here)
    monkeypatch.setenv("HOME", str(here))
    assert study_path("runs/tune/a") == str(here / "runs" / "tune" / "a")
    assert study_path("./runs/../runs/tune/a") == str(here / "runs" / "tune" / "a")
    assert study_path("~/runs/tune/a") == str(here / "runs" / "tune" / "a")
    assert study_path(f"file://{here}/runs/tune/a") == str(here / "runs" / "tune" / "a")
    assert study_path("s3://bucket/nsr-tune/a") == "s3://bucket/nsr-tune/a"
    assert study_path("gs://bucket/a/") == "gs://bucket/a/"
    assert study_dir("runs/tune", "a") == str(here / "runs" / "tune" / "a")
    assert study_dir("s3://bucket/nsr-tune/", "a") == "s3://bucket/nsr-tune/a"


def test_a_relative_path_is_refused_for_what_is_there_not_for_its_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "tune" / "s").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no nsr-tune study here"):
        read_study("runs/tune/s")
