"""The finalists' stage as plain data and torch: intervals by record, choices, the final front."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nsr_tune.data import BUNDLED_DIR, load_mitbih, make_splits
from nsr_tune.errors import ConfigError, SpaceError
from nsr_tune.evaluation.finalist import evaluate_finalist
from nsr_tune.evaluation.run import evaluate
from nsr_tune.plots import write_final_files
from nsr_tune.protocol import FINAL_EVAL, FinalConfig, protocol
from nsr_tune.results.bootstrap import BeatOutcomes, record_intervals
from nsr_tune.results.finalists import (
    FinalResult,
    choose_finalists,
    choose_surrogate,
    final_front,
    final_table,
)
from nsr_tune.results.front import TrialOutcome, analyse
from nsr_tune.results.record import TrialRecord
from nsr_tune.study.space import load_space, parse_space
from tests._helpers import linear_model

OBJ = (("val_balanced_acc", "max"), ("val_robust_balanced_acc_eps_0.05", "max"))
FINAL = ("final_balanced_acc", "final_robust_balanced_acc_eps_0.05")


def _outcomes(record, y, correct, survived=None):
    correct = np.asarray(correct, dtype=bool)
    survived = np.asarray(survived if survived is not None else [correct], dtype=bool)
    return BeatOutcomes(record=np.asarray(record), y=np.asarray(y), clean_correct=correct, survived=survived)


# ------------------------------------------------------------------ intervals by record


def test_macro_f1_intervals_resample_records_with_the_predicted_classes():
    # Record 1: two N beats, one called S; record 2: two S beats, both right. Pooled, F1 of N is
    # 2/3 and of S 0.8, so macro F1 is 11/15; a resample of record 2 alone has only S, F1 1.0;
    # one of record 1 alone has N at F1 2/3 and S with no support (left out of the mean).
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    beats = BeatOutcomes(
        record=np.array([1, 1, 2, 2]),
        y=y,
        clean_correct=pred == y,
        survived=np.array([pred == y]),
        pred=pred,
        robust_pred=np.array([[1, 1, 1, 1]]),  # under attack every beat is called S
    )
    ci = record_intervals(beats, eps=[0.05], classes=["N", "S"], resamples=4000, level=0.99, seed=1)
    low, high = ci["macro_f1"]
    assert low == pytest.approx(2 / 3) and high == pytest.approx(1.0)
    from nsr_tune.results.bootstrap import _f1_tables, _macro_f1

    pooled = _macro_f1(np.ones((1, 2)), *_f1_tables(np.array([0, 0, 1, 1]), y, pred, 5))
    assert pooled[0] == pytest.approx(11 / 15)
    # Under attack N has F1 0 and S 2/3 when pooled; a resample of record 2 alone scores 1.0.
    assert ci["robust_macro_f1_eps_0.05"][1] == pytest.approx(1.0)


def test_one_record_gives_an_interval_of_zero_width():
    beats = _outcomes([7] * 4, [0, 0, 1, 1], [1, 0, 1, 1])
    ci = record_intervals(beats, eps=[0.05], classes=["N", "S"], resamples=50)
    assert ci["clean_acc"] == (0.75, 0.75)
    assert ci["balanced_acc"] == (0.75, 0.75)  # recall N 0.5, S 1.0
    assert ci["robust_acc_eps_0.05"] == (0.75, 0.75)


def test_two_records_reach_exactly_each_record_alone():
    # Record 1: 3 of 4 correct; record 2: 0 of 2. A resample of two records is {1,1}, {1,2} or
    # {2,2}, each pair-of-the-same with probability 1/4, so the 2.5% and 97.5% quantiles of 2000
    # resamples are exactly the two records alone: 0.0 and 0.75.
    beats = _outcomes([1, 1, 1, 1, 2, 2], [0] * 6, [1, 1, 1, 0, 0, 0])
    ci = record_intervals(beats, eps=[0.1], classes=["N"], resamples=2000, seed=3)
    assert ci["clean_acc"] == (0.0, 0.75)
    assert ci["balanced_acc"] == (0.0, 0.75)


def test_a_class_missing_from_a_resample_drops_out_of_its_balanced_accuracy():
    # Record 1 holds only N beats (all right), record 2 only S beats (all wrong). The resample
    # {1, 1} has no S beat: its balanced accuracy is N's recall alone, 1.0, not (1.0 + nan) / 2.
    beats = _outcomes([1, 1, 2, 2], [0, 0, 1, 1], [1, 1, 0, 0])
    ci = record_intervals(beats, eps=[0.1], classes=["N", "S"], resamples=2000)
    assert ci["balanced_acc"] == (0.0, 1.0)


def test_robust_intervals_use_each_eps_row():
    beats = _outcomes([1, 1, 2, 2], [0] * 4, [1, 1, 1, 1], survived=[[1, 1, 1, 1], [0, 0, 0, 0]])
    ci = record_intervals(beats, eps=[0.01, 0.1], classes=["N"], resamples=20)
    assert ci["robust_acc_eps_0.01"] == (1.0, 1.0)
    assert ci["robust_acc_eps_0.1"] == (0.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resamples": 0}, "resamples: must be a whole number >= 1"),
        ({"level": 1.5}, "level: must lie between 0 and 1"),
        ({"classes": ["X"]}, "classes: unknown class(es) ['X']"),
        ({"eps": [0.1, 0.2]}, "eps: 2 levels, but the outcomes hold 1"),
    ],
)
def test_interval_arguments_are_checked(kwargs, message):
    beats = _outcomes([1, 2], [0, 0], [1, 0])
    args = {"eps": [0.1], "classes": ["N"], **kwargs}
    with pytest.raises(ConfigError) as e:
        record_intervals(beats, **args)
    assert message in str(e.value)


# ------------------------------------------------------------------ who is a finalist


def _front():
    outcomes = [
        TrialOutcome("a", "cnn ce · a", "complete", {"val_balanced_acc": 0.9, OBJ[1][0]: 0.1}),
        TrialOutcome("b", "cnn nsr · b", "complete", {"val_balanced_acc": 0.7, OBJ[1][0]: 0.5}),
        TrialOutcome("c", "mlp ce · c", "complete", {"val_balanced_acc": 0.6, OBJ[1][0]: 0.05}),
        TrialOutcome("d", "mlp nsr · d", "complete", {"val_balanced_acc": 0.5, OBJ[1][0]: 0.01}),
        TrialOutcome("e", "cnn nsr · e", "diverged", {}),
    ]
    return analyse(outcomes, OBJ)


def test_finalists_are_the_front_then_the_next_rank():
    front = _front()
    assert choose_finalists(front, top_ranks=1) == ("a", "b")
    assert choose_finalists(front, top_ranks=2) == ("a", "b", "c")
    assert choose_finalists(front, top_ranks=9) == ("a", "b", "c", "d")


def _trial(trial_id, objective, score, *, final=True):
    last = {"final": final, "val_balanced_acc": score}
    return TrialRecord(trial_id, {"objective": {"name": objective}}, (last,))


def test_the_surrogate_is_the_best_other_complete_ce_trial():
    trials = [
        _trial("a", "ce", 0.8),
        _trial("b", "ce", 0.9),
        _trial("c", "nsr", 0.95),
        _trial("d", "ce", 0.99, final=False),  # never finished
    ]
    assert choose_surrogate(trials, exclude="x") == "b"
    assert choose_surrogate(trials, exclude="b") == "a"  # never the finalist itself
    assert choose_surrogate(trials[1:3], exclude="b") is None


# ------------------------------------------------------------------ the final front


def _final(trial_id, clean, robust, *, ci=None, flags=None, by_attack=None):
    metrics = {FINAL[0]: clean, FINAL[1]: robust}
    for name, (low, high) in (ci or {}).items():
        metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
    evaluation = {
        "eps": [0.05],
        "clean_acc": clean,
        "robust_acc": {"0.05": robust},
        "robust_acc_by_attack": by_attack or {},
        "attack": "APGD-CE-10 -> Square-100q",
    }
    return FinalResult(trial_id, "s", "", metrics, flags or {}, {}, evaluation, 100, 2)


def test_the_final_front_names_who_fell_off_and_why():
    validation = _front()
    finals = {
        "a": _final("a", 0.8, 0.3, ci={FINAL[0]: (0.7, 0.9), FINAL[1]: (0.2, 0.4)}),
        "b": _final(
            "b",
            0.7,
            0.2,
            ci={FINAL[0]: (0.6, 0.75), FINAL[1]: (0.1, 0.25)},
            flags={"zero_gradients": "40% of beats"},
            by_attack={"apgd_ce": {"0.05": 0.6}, "square": {"0.05": 0.2}},
        ),
        "c": _final("c", 0.5, 0.1, ci={FINAL[0]: (0.4, 0.55), FINAL[1]: (0.0, 0.15)}),
    }
    front = final_front(validation, finals)
    assert front.names == FINAL
    assert dict(zip(front.result.ids, front.result.ranks.tolist(), strict=True)) == {"a": 0, "b": 1, "c": 2}
    assert front.fell_off == {
        "b": "square broke the most beats at eps 0.05 (0.400 of them); dominated by cnn ce · a; "
        "flags: zero_gradients"
    }
    # b's intervals overlap a's on both objectives; c's clean interval lies below a's and b's.
    assert front.not_separable == {"b": ("a",)}
    table = final_table(front)
    assert "0.8000 [0.700, 0.900]" in table
    assert "fell off the front; not separable at 95% from cnn ce · a" in table
    assert "on 100 test beats from 2 records" in table


def test_final_files(tmp_path):
    finals = {t: _final(t, 0.8 - 0.1 * i, 0.1 + 0.1 * i) for i, t in enumerate("abc")}
    files = write_final_files(final_front(_front(), finals), tmp_path)
    assert files["png"].stat().st_size > 10_000
    header = files["csv"].read_text().splitlines()[0].split(",")
    assert header[:3] == ["id", "run_name", "val_balanced_acc"]
    assert "final_balanced_acc_ci_low" in header and "not_separable_from" in header


# ------------------------------------------------------------------ one finalist, for real


@pytest.fixture(scope="module")
def bundled_test():
    beats, _ = load_mitbih(BUNDLED_DIR)
    return make_splits(beats, split="inter").test


def test_a_finalist_gets_final_metrics_and_intervals_by_record(bundled_test):
    model = linear_model()
    evaluation = protocol(
        "strong",
        eps=(0.01, 0.05),
        per_class_cap=20,
        apgd_steps=5,
        square_queries=20,
        sap_steps=5,
        transfer_steps=3,
        bisect_steps=0,
        noise_stress=False,
    )
    config = FinalConfig(evaluation=evaluation, bootstrap=100)
    result = evaluate_finalist(
        model,
        bundled_test,
        trial_id="t1",
        config=config,
        split="inter",
        surrogate=linear_model(seed=1),
        surrogate_id="t0",
    )
    plain = evaluate(model, bundled_test, config=evaluation, surrogate=linear_model(seed=1))
    # The same evaluation as `evaluate`, under final_ names, plus intervals.
    assert result.metrics["final_robust_acc_eps_0.05"] == plain.robust_acc[0.05]
    assert result.metrics["final_balanced_acc"] == plain.balanced_acc
    assert result.surrogate == "t0" and result.settings == config.fingerprint()
    assert result.n_beats == plain.n
    assert result.n_records == 2  # the bundled inter test records, 213 and 232
    for name in ("final_balanced_acc", "final_robust_balanced_acc_eps_0.05"):
        low, high = result.interval(name)
        assert 0.0 <= low <= high <= 1.0
    assert FinalResult.from_dict(result.to_dict()) == result
    assert plain.beats is None  # per-beat outcomes only when asked for


def test_final_settings_are_checked_and_fingerprinted():
    assert FinalConfig().evaluation == FINAL_EVAL
    assert FinalConfig.from_dict(FinalConfig().to_dict()) == FinalConfig()
    assert FinalConfig(top_ranks=1).fingerprint() != FinalConfig().fingerprint()
    for kwargs, message in (
        ({"top_ranks": 0}, "top_ranks"),
        ({"bootstrap": -1}, "bootstrap"),
        ({"ci": 1.0}, "ci"),
    ):
        with pytest.raises(ConfigError, match=message):
            FinalConfig(**kwargs)


def test_spaces_read_evaluation_final():
    dry = load_space("dry_run").final
    assert dry.top_ranks == 2 and dry.bootstrap == 200
    assert dry.evaluation.attacks == ("apgd_ce", "apgd_t", "square", "sap", "transfer")
    assert dry.evaluation.eps == (0.01, 0.05, 0.1) and dry.evaluation.per_class_cap == 25
    wide = load_space("mitbih_wide").final
    assert wide == FinalConfig()  # no section: the strong protocol on <= 1000 beats per class
    assert 0.05 in wide.evaluation.eps


def test_a_final_grid_without_the_objective_eps_is_refused():
    text = load_space("dry_run").source.replace("eps: [0.01, 0.05, 0.1]\n    per_class_cap: 25", "eps: [0.1]")
    assert "eps: [0.1]" in text
    with pytest.raises(SpaceError) as e:
        parse_space(text, where="s.yaml")
    assert "evaluation.final.eps" in str(e.value) and "0.05" in str(e.value)
    bad = load_space("dry_run").source.replace("top_ranks: 2", "top_ranks: 0")
    with pytest.raises(SpaceError, match="top_ranks"):
        parse_space(bad, where="s.yaml")


def test_an_interval_without_resamples_is_nan():
    result = _final("a", 0.5, 0.2)
    assert all(math.isnan(v) for v in result.interval(FINAL[0]))


def test_hypervolume_grows_with_the_trials_that_finish():
    from nsr_tune.results.report import hypervolume_by_trial

    values = [(0.5, 0.5), (0.2, 0.9), (math.nan, math.nan), (0.6, 0.6)]
    curve = hypervolume_by_trial(values, directions=["maximize", "maximize"], reference=[0.0, 0.0])
    assert [k for k, _ in curve] == [1, 2, 3, 4]
    assert [h for _, h in curve] == pytest.approx([0.25, 0.33, 0.33, 0.42], abs=1e-12)


def test_the_report_explains_every_masking_flag():
    from nsr_tune.evaluation.masking import FLAGS
    from nsr_tune.plots._report_html import FLAG_EXPLANATIONS

    assert tuple(FLAG_EXPLANATIONS) == FLAGS
