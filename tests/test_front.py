"""The study front, the study record and the metric schema: pure data, no Ray, no MLflow."""

from __future__ import annotations

import csv
import math

import pytest

from nsr_tune.config import EvalConfig
from nsr_tune.errors import ConfigError
from nsr_tune.metrics import MetricName, metric_name, objective_names, on_part, parse_metric
from nsr_tune.plots import write_front_files
from nsr_tune.protocol import PROTOCOLS, protocol
from nsr_tune.results.flags import MaskingFlag, flag_metrics, flags_text, parse_flags_text, reported_flags
from nsr_tune.results.front import (
    TrialOutcome,
    analyse,
    chance_objectives,
    front_from_record,
    front_table,
    run_name,
    trial_params,
)
from nsr_tune.results.record import StudyDescription, StudyRecord, TrialRecord
from nsr_tune.tracking import masking_tags

OBJ = (("val_balanced_acc", "max"), ("val_robust_balanced_acc_eps_0.05", "max"))


def _metrics(clean: float, robust: float, *, test: tuple[float, float] | None = None) -> dict[str, float]:
    out = {"val_balanced_acc": clean, "val_robust_balanced_acc_eps_0.05": robust}
    if test is not None:
        out |= {"test_balanced_acc": test[0], "test_robust_balanced_acc_eps_0.05": test[1]}
    return out


OUTCOMES = [
    TrialOutcome("a", "cnn ce · a", "complete", _metrics(0.9, 0.1, test=(0.8, 0.05))),
    TrialOutcome("b", "cnn nsr β=0.3 · b", "complete", _metrics(0.7, 0.5, test=(0.6, 0.4))),
    TrialOutcome("c", "mlp ce · c", "complete", _metrics(0.6, 0.2)),  # dominated by b
    TrialOutcome("d", "mlp nsr β=1 · d", "complete", _metrics(0.5, 0.5)),  # dominated by b (tie on robust)
    TrialOutcome("e", "cnn nsr β=9 · e", "diverged", _metrics(0.99, 0.99)),  # never ranked
    TrialOutcome("f", "cnn ce · f", "failed", {}),
    TrialOutcome("g", "cnn ce · g", None, _metrics(0.95, 0.95)),  # partly trained: never ranked
    TrialOutcome("h", "cnn ce · h", "complete", {"val_balanced_acc": 0.99}),
]


def test_only_complete_trials_with_every_objective_are_ranked():
    front = analyse(OUTCOMES, OBJ, parent_run_id="p")
    r = front.result
    assert r.ids == ("a", "b", "c", "d")
    assert r.ranks.tolist() == [0, 0, 1, 1]
    assert set(r.front_ids) == {"a", "b"}
    assert dict(front.excluded) == {
        "e": "diverged",
        "f": "failed",
        "g": "unfinished",
        "h": "missing objective",
    }
    # Area dominated by (0.9, 0.1) and (0.7, 0.5) above the reference (0, 0).
    assert r.hypervolume == pytest.approx(0.9 * 0.1 + 0.7 * (0.5 - 0.1))
    assert front.test_values["a"] == (0.8, 0.05)
    assert all(math.isnan(v) for v in front.test_values["c"])
    assert front.test_names == ("test_balanced_acc", "test_robust_balanced_acc_eps_0.05")


def test_front_from_record_reads_the_last_report_and_the_trial_state():
    def trial(tid: str, *reports: dict, error: str | None = None) -> TrialRecord:
        config = {"model": {"name": "cnn"}, "objective": {"name": "nsr", "beta": 0.3}}
        return TrialRecord(tid, config, tuple(reports), error)

    record = StudyRecord(
        "/x",
        StudyDescription(name="s", experiment="e", objectives=OBJ),
        (
            trial(
                "t1",
                {"epoch": 1, **_metrics(0.2, 0.9)},
                {
                    "epoch": 2,
                    "final": True,
                    **_metrics(0.8, 0.3),
                    **flag_metrics("val", {}),
                    **flag_metrics(
                        "test", {"zero_gradients": "3% of the beats", "more_iterations_help": "x"}
                    ),
                },
            ),
            trial("t2", {"epoch": 1, "final": True, **_metrics(0.6, 0.6), **flag_metrics("val", {})}),
            trial("t3", {"epoch": 1, **_metrics(1.0, 1.0)}),  # still running: its epoch-1 scores stay out
            trial("t4", {"epoch": 1, **_metrics(1.0, 1.0)}, error="RuntimeError: boom"),
            trial("t5", {"epoch": 1, "diverged": True, "final": True, **_metrics(0.2, 0.2)}),
        ),
    )
    assert [t.state for t in record.trials] == ["complete", "complete", None, "failed", "diverged"]
    front = front_from_record(record)
    assert front.result.ids == ("t1", "t2")
    assert front.result.values.tolist() == [[0.8, 0.3], [0.6, 0.6]]
    assert front.result.ranks.tolist() == [0, 0]
    assert dict(front.excluded) == {"t3": "unfinished", "t4": "failed", "t5": "diverged"}
    assert front.run_names["t1"] == "cnn nsr β=0.3 · t1"
    # The final report's flags, in report order; a trial that no check flagged is absent.
    assert dict(front.flags) == {"t1": ("test:zero_gradients", "test:more_iterations_help")}


def test_front_table_and_csv_are_exact(tmp_path):
    pytest.importorskip("matplotlib")
    front = analyse(OUTCOMES[:2], OBJ)
    assert front_table(front).splitlines() == [
        "run                val balanced_acc  val robust_balanced_acc_eps_0.05  "
        "test balanced_acc  test robust_balanced_acc_eps_0.05  flags",
        "-----------------  ----------------  --------------------------------  "
        "-----------------  ---------------------------------  -----",
        "cnn ce · a         0.9000            0.1000                            "
        "0.8000             0.0500                             -    ",
        "cnn nsr β=0.3 · b  0.7000            0.5000                            "
        "0.6000             0.4000                             -    ",
        "2 of 2 ranked trials on the front, 0 flagged for gradient masking; hypervolume 0.3700 "
        "(reference [0.0, 0.0]); 0 not ranked",
    ]
    files = write_front_files(front, tmp_path)
    assert set(files) == {"csv", "png", "html"}
    rows = list(csv.reader(files["csv"].open()))
    assert rows == [
        [
            "run_id",
            "run_name",
            "pareto_rank",
            *(m for m, _ in OBJ),
            *(on_part(m, "test") for m, _ in OBJ),
            "masking_flags",
        ],
        ["a", "cnn ce · a", "0", "0.9", "0.1", "0.8", "0.05", "none"],
        ["b", "cnn nsr β=0.3 · b", "0", "0.7", "0.5", "0.6", "0.4", "none"],
    ]


def test_flagged_trials_show_in_the_table_the_csv_and_the_figures(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("plotly")
    flags = ("val:zero_gradients", "test:zero_gradients")
    b = TrialOutcome("b", "cnn nsr β=0.3 · b", "complete", _metrics(0.7, 0.5, test=(0.6, 0.4)), flags=flags)
    c = TrialOutcome("c", "mlp ce · c", "complete", _metrics(0.6, 0.2), flags=("test:noise_beats_attacks",))
    front = analyse([OUTCOMES[0], b, c], OBJ)
    assert dict(front.flags) == {"b": flags, "c": ("test:noise_beats_attacks",)}
    assert front_table(front).splitlines() == [
        "run                val balanced_acc  val robust_balanced_acc_eps_0.05  "
        "test balanced_acc  test robust_balanced_acc_eps_0.05  flags                                 ",
        "-----------------  ----------------  --------------------------------  "
        "-----------------  ---------------------------------  --------------------------------------",
        "cnn ce · a         0.9000            0.1000                            "
        "0.8000             0.0500                             -                                     ",
        "cnn nsr β=0.3 · b  0.7000            0.5000                            "
        "0.6000             0.4000                             val:zero_gradients,test:zero_gradients",
        "2 of 3 ranked trials on the front, 1 flagged for gradient masking; hypervolume 0.3700 "
        "(reference [0.0, 0.0]); 0 not ranked",
    ]
    files = write_front_files(front, tmp_path)
    rows = list(csv.DictReader(files["csv"].open()))
    assert [(r["run_id"], r["masking_flags"]) for r in rows] == [
        ("a", "none"),
        ("b", "val:zero_gradients,test:zero_gradients"),
        ("c", "test:noise_beats_attacks"),
    ]
    html = files["html"].read_text(encoding="utf-8")
    assert "gradient masking flagged (distrust its robustness)" in html
    assert "masking flags: val:zero_gradients,test:zero_gradients" in html
    assert "masking flags: none" in html


def test_masking_flags_travel_from_the_report_to_the_tags_and_back():
    report = {
        **_metrics(0.7, 0.5),
        **flag_metrics("val", {"zero_gradients": "4.0% of the beats have a zero input gradient"}),
        **flag_metrics("test", {}),
    }
    assert report["val_masking_flags"] == 1.0 and report["test_masking_flags"] == 0.0
    assert reported_flags(report) == (
        MaskingFlag("val", "zero_gradients", "4.0% of the beats have a zero input gradient"),
    )
    tags = masking_tags(report)
    assert tags == {
        "masking_flags": "val:zero_gradients",
        "masking_flag.val.zero_gradients": "4.0% of the beats have a zero input gradient",
    }
    assert parse_flags_text(tags["masking_flags"]) == ("val:zero_gradients",)
    # A report of a protocol without checks, and a run recorded before flags were kept.
    assert masking_tags(_metrics(0.7, 0.5)) == {"masking_flags": "none"}
    # What an evaluation skipped travels with the flags.
    skipped = {**_metrics(0.7, 0.5), "test_skipped": {"transfer": "no surrogate model was given"}}
    assert masking_tags(skipped) == {
        "masking_flags": "none",
        "skipped.test.transfer": "no surrogate model was given",
    }
    assert parse_flags_text("none") == () and parse_flags_text(None) == ()
    assert flags_text(["val:a", "test:b"]) == "val:a,test:b" and flags_text([], none="-") == "-"


def test_run_names_params_and_chance_values():
    config = {
        "model": {"name": "cnn", "knobs": {"width": 8}},
        "objective": {"name": "jacobian", "beta": 0.25},
    }
    assert run_name(config, "x_1") == "cnn jacobian β=0.25 · x_1"
    assert run_name({**config, "objective": {"name": "pgd_at", "beta": 0.0}}, "x_2") == "cnn pgd_at · x_2"
    assert trial_params(config) == {
        "model.name": "cnn",
        "model.knobs.width": 8,
        "objective.name": "jacobian",
        "objective.beta": 0.25,
    }
    assert chance_objectives(
        ["val_balanced_acc", "val_robust_acc_eps_0.05", "val_robust_balanced_acc_eps_0.1"],
        n_balanced_classes=4,
    ) == {"val_balanced_acc": 0.25, "val_robust_acc_eps_0.05": 0.2, "val_robust_balanced_acc_eps_0.1": 0.25}


def test_a_description_of_an_older_study_still_yields_its_settings():
    old = {
        "name": "n",
        "experiment": "dry_run",
        "objectives": [list(o) for o in OBJ],
        "params": {"data_dir": "/data/mitdb", "num_samples": 4},
        "tags": {"data_fingerprint": "abc", "nsr_tune.space_path": "spaces/dry_run.yaml"},
        "texts": {"search_space.yaml": "name: dry_run\n"},
    }
    d = StudyDescription.from_dict(old)
    assert dict(d.settings) == {
        "space_path": "spaces/dry_run.yaml",
        "data_dir": "/data/mitdb",
        "data_fingerprint": "abc",
        "num_samples": 4,
    }
    assert d.objectives == OBJ and d.space_source == "name: dry_run\n"
    assert StudyDescription.from_dict(d.to_dict()) == d
    with pytest.raises(ConfigError, match="no objectives"):
        StudyDescription.from_dict({"name": "n", "experiment": "e"})


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("val_robust_balanced_acc_eps_0.05", MetricName("robust_balanced_acc", "val", 0.05)),
        ("test_clean_acc", MetricName("clean_acc", "test", None)),
        ("val_noise_acc_eps_1e-05", MetricName("noise_acc", "val", 1e-05)),
        ("sensitivity_N", MetricName("sensitivity_N", None, None)),
        ("epoch_val_acc", MetricName("epoch_val_acc", None, None)),
    ],
)
def test_metric_names_round_trip(name, parsed):
    assert parse_metric(name) == parsed
    assert str(parsed) == name


def test_metric_names_are_built_in_one_way():
    assert metric_name("robust_acc", part="val", eps=0.050) == "val_robust_acc_eps_0.05"
    assert on_part("val_robust_acc_eps_0.1", "test") == "test_robust_acc_eps_0.1"
    assert objective_names([0.05]) == (
        "val_clean_acc",
        "val_balanced_acc",
        "val_macro_f1",
        "val_robust_auc",
        "val_robust_balanced_auc",
        "val_robust_acc_eps_0.05",
        "val_robust_balanced_acc_eps_0.05",
        "val_robust_macro_f1_eps_0.05",
        "val_noise_acc_eps_0.05",
    )
    with pytest.raises(ValueError, match="part"):
        metric_name("clean_acc", part="train")


def test_the_named_protocols_and_their_overrides():
    standard = PROTOCOLS["standard"]
    assert standard == EvalConfig()
    assert standard.eps == (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
    assert (standard.steps, standard.per_class_cap, standard.attacks) == (100, 300, ("pgd",))
    quick = PROTOCOLS["quick"]
    assert (quick.eps, quick.steps, quick.per_class_cap, quick.bisect_steps) == (
        (0.01, 0.05, 0.1),
        20,
        150,
        0,
    )
    strong = PROTOCOLS["strong"]
    assert strong.attacks == ("apgd_ce", "apgd_t", "square", "sap", "transfer")
    assert (strong.check_masking, strong.noise_stress, standard.check_masking, standard.noise_stress) == (
        True,
        True,
        False,
        False,
    )
    assert (strong.eps, strong.per_class_cap) == (standard.eps, standard.per_class_cap)
    assert protocol("quick", steps=7, eps=[0.2, 0.1]) == EvalConfig(
        eps=(0.1, 0.2), steps=7, per_class_cap=150, bisect_steps=0
    )
    with pytest.raises(ConfigError, match=r"^protocol: must be one of quick, standard, strong; got 'auto'"):
        protocol("auto")
    with pytest.raises(ConfigError, match="unknown setting"):
        protocol("standard", stepz=3)
    with pytest.raises(ConfigError, match=r"^steps: must be a positive integer"):
        protocol("standard", steps=0)
    with pytest.raises(
        ConfigError, match=r"^attacks: must be one of pgd, apgd_ce, apgd_t, square, sap, transfer"
    ):
        protocol("strong", attacks=["pgd", "fgsm"])
    with pytest.raises(ConfigError, match=r"^attacks: square runs under the L-inf norm only"):
        protocol("strong", norm="l2")
    assert protocol("strong", norm="l2", attacks=("apgd_ce", "sap")).attacks == ("apgd_ce", "sap")
