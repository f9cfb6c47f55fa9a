"""What `train` and `evaluate` print, and the metrics.json they write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _fmt(v: float) -> str:
    return "  -  " if v != v else f"{v:.3f}"  # NaN -> dash


def _print_eps_table(heading: str, table: Any, eps: Sequence[float]) -> None:
    """One column per entry of `table` (name -> eps -> accuracy), one row per eps; nothing if empty."""
    if not table:
        return
    names = list(table)
    print(f"  {heading}:")
    print(f"  {'eps':>7} " + " ".join(f"{a:>8}" for a in names))
    for e in eps:
        print(f"  {e:>7g} " + " ".join(f"{_fmt(table[a][e]):>8}" for a in names))


def _print_curves(result: Any) -> None:
    print(f"  {'eps':>7} {'uV':>7} {'robust':>7} {'rob.bal':>7} {'rob.F1':>7} {'noise':>7}")
    for e in result.eps:
        uv = result.eps_uv[e]
        uv_text = "-" if uv != uv else f"{uv:.0f}"
        print(
            f"  {e:>7g} {uv_text:>7} {_fmt(result.robust_acc[e]):>7} "
            f"{_fmt(result.robust_balanced_acc[e]):>7} "
            f"{_fmt(result.robust_macro_f1.get(e, float('nan'))):>7} "
            f"{_fmt(result.noise_acc[e]):>7}"
        )
    for heading, table in (
        ("robust accuracy after each attack of the cascade", result.robust_acc_by_attack),
        ("robust accuracy of each attack run alone", result.robust_acc_alone),
        ("robust accuracy by class", result.robust_acc_by_class),
    ):
        _print_eps_table(heading, table, result.eps)


def _print_noise_stress(result: Any) -> None:
    from nsr_tune.config import NOISE_KINDS

    if not result.noise_stress:
        return
    print("  noise stress test (accuracy; RMS in uV or SNR in dB):")
    for kind in NOISE_KINDS:
        cells = [
            f"{k[len(kind) + 1 :]} {_fmt(v)}"
            for k, v in result.noise_stress.items()
            if k.startswith(kind + "_")
        ]
        if cells:
            print(f"  {kind:>15}: " + "  ".join(cells))


def print_result(result: Any, *, title: str) -> None:
    print(f"\n{title}: {result.n} samples, {result.attack}")
    if result.timings:
        print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items() if v >= 0.05))
    print(f"  clean accuracy     {_fmt(result.clean_acc)}")
    print(
        f"  balanced accuracy  {_fmt(result.balanced_acc)}"
        f"  (mean recall over {', '.join(result.balanced_classes)})"
    )
    print(f"  macro F1           {_fmt(result.macro_f1)}  (mean F1 over the classes present)")
    low, mid, high = result.uv_per_unit
    if mid == mid:  # not NaN
        print(
            f"  eps 1 = {mid:.0f} uV, the median over the samples ({low:.0f} to {high:.0f}); "
            "the uV column uses the median"
        )
    print(f"  robust AUC         {_fmt(result.robust_auc)}  (balanced: {_fmt(result.robust_balanced_auc)})")
    _print_curves(result)
    uv = result.median_adv_eps_uv
    print(
        f"  median adversarial eps {result.median_adv_eps:.4g}"
        + ("" if uv != uv else f" ({uv:.0f} uV)")
        + (" (above the largest eps: most beats survive it)" if result.median_adv_eps == float("inf") else "")
    )
    _print_noise_stress(result)
    for name, why in result.skipped.items():
        print(f"  SKIPPED {name}: {why}")
    for name, why in result.flags.items():
        print(f"  FLAG {name}: {why}")
    print(f"  {'class':>7} {'sens.':>7} {'prec.':>7} {'F1':>7} {'n':>7}")
    for c, m in result.per_class.items():
        print(f"  {c:>7} {_fmt(m.sensitivity):>7} {_fmt(m.precision):>7} {_fmt(m.f1):>7} {m.support:>7}")


def metrics_json(result: Any, history: Sequence[Any] = ()) -> dict[str, Any]:
    out = result.to_dict()
    if history:
        out["history"] = [dict(h) for h in history]
    return out
