"""What a study's finalists leave in MLflow: their `final_*` metrics and tags, and the final front.

A mixin of `StudyTracker`, which provides the client and the logging calls it uses.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nsr_tune.config import ATTACKS
from nsr_tune.metrics import eps_key, metric_eps, metric_name
from nsr_tune.plots import write_final_files
from nsr_tune.results.finalists import FinalFront, FinalResult
from nsr_tune.results.flags import flags_text
from nsr_tune.results.front import StudyFront
from nsr_tune.tracking._tags import TAG_FINAL, TAG_FINAL_FRONT, TAG_MASKING_FLAG, TAG_TRIAL

__all__ = ["FinalistRuns"]


class FinalistRuns:
    """The finalists' side of a study's runs (see nsr_tune.results.finalists)."""

    # Provided by StudyTracker.
    client: Any

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], *, step: int) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None: ...

    def record_final(self, run_id: str, final: FinalResult) -> bool:
        """A finalist's `final_*` metrics and flags; False when these settings were logged already."""
        if self.client.get_run(run_id).data.tags.get(TAG_FINAL) == final.settings:
            return False
        self.log_metrics(run_id, final.metrics, step=0)
        tags = {
            "final_attack": str(final.evaluation.get("attack", ""))[:5000],
            "final_masking_flags": flags_text(list(final.flags)),
            "final_surrogate": final.surrogate or "none",
            "final_beats": str(final.n_beats),
            "final_records": str(final.n_records),
        }
        if final.node_id:
            tags["final_ray_node_id"] = final.node_id
        tags.update({f"{TAG_MASKING_FLAG}.final.{name}": why for name, why in final.flags.items()})
        tags.update({f"skipped.final.{name}": why for name, why in final.skipped.items()})
        self.set_tags(run_id, tags)
        self.set_tags(run_id, {TAG_FINAL: final.settings})  # last: the write is complete
        return True

    def final_results(self, front: StudyFront) -> dict[str, FinalResult]:
        """The finalists' results as MLflow holds them (run id -> result), for `front`'s study.

        Rebuilt from each run's `final_*` metrics and tags: enough for the final front and its
        table (the full evaluation stays beside the study, in its final/ directory).
        """
        out = {}
        for rid in front.result.ids:
            run = self.client.get_run(rid)
            tags, metrics = run.data.tags, run.data.metrics
            if TAG_FINAL not in tags:
                continue
            finals = {k: v for k, v in metrics.items() if k.startswith("final_")}
            eps = metric_eps(k for k in finals if "_ci_" not in k)
            by_attack = {
                a: {eps_key(e): finals[metric_name(f"robust_acc_{a}", part="final", eps=e)] for e in eps}
                for a in ATTACKS
                if all(metric_name(f"robust_acc_{a}", part="final", eps=e) in finals for e in eps)
            }
            evaluation = {
                "attack": tags.get("final_attack", ""),
                "eps": eps,
                "clean_acc": finals.get(metric_name("clean_acc", part="final"), math.nan),
                "robust_acc": {
                    eps_key(e): finals.get(metric_name("robust_acc", part="final", eps=e)) for e in eps
                },
                "robust_acc_by_attack": by_attack,
            }
            prefix = f"{TAG_MASKING_FLAG}.final."
            out[rid] = FinalResult(
                trial_id=tags.get(TAG_TRIAL, rid),
                settings=tags[TAG_FINAL],
                surrogate=tags.get("final_surrogate", ""),
                metrics=finals,
                flags={k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)},
                skipped={
                    k.removeprefix("skipped.final."): v
                    for k, v in tags.items()
                    if k.startswith("skipped.final.")
                },
                evaluation=evaluation,
                n_beats=int(tags.get("final_beats", 0)),
                n_records=int(tags.get("final_records", 0)),
            )
        return out

    def publish_final(
        self, front: FinalFront, run_ids: Mapping[str, str], *, settings: str, parent_run_id: str
    ) -> bool:
        """Final-front tags on each finalist (by `run_ids`: front id -> MLflow run id), and the
        parent's final_front.png / .csv. False when this very front was published already."""
        ids = json.dumps(sorted(front.result.ids))
        tags = self.client.get_run(parent_run_id).data.tags
        if tags.get(TAG_FINAL) == settings and tags.get(TAG_FINAL_FRONT) == ids:
            return False
        result = front.result
        for rid, rank in zip(result.ids, result.ranks, strict=True):
            self.set_tags(
                run_ids[rid],
                {
                    "final_pareto_optimal": str(bool(rank == 0)).lower(),
                    "final_pareto_rank": str(int(rank)),
                    "final_fell_off": front.fell_off.get(rid, "false"),
                    "final_not_separable_from": ",".join(
                        front.validation.run_names.get(d, d) for d in front.not_separable.get(rid, ())
                    )
                    or "none",
                },
            )
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_final_files(front, Path(tmp)).values():
                self.log_file(parent_run_id, path)
        if result.hypervolume is not None:
            self.log_metrics(parent_run_id, {"final_hypervolume": result.hypervolume}, step=0)
        names = front.validation.run_names
        self.set_tags(
            parent_run_id,
            {
                "final_front": json.dumps([names.get(i, i) for i in result.front_ids], ensure_ascii=False),
                "final_fell_off": json.dumps([names.get(i, i) for i in front.fell_off], ensure_ascii=False),
            },
        )
        self.set_tags(parent_run_id, {TAG_FINAL: settings, TAG_FINAL_FRONT: ids})
        return True
