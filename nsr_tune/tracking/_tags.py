"""The tags by which nsr-tune finds its MLflow runs again, shared by the tracking modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nsr_tune.results.flags import flags_text, reported_flags

TAG_ROLE = "nsr_tune.role"
TAG_PATH = "nsr_tune.experiment_path"
TAG_TRIAL = "nsr_tune.trial_id"
TAG_STATE = "nsr_tune.state"
TAG_OBJECTIVES = "nsr_tune.objectives"
# A complete trial's masking flags: every `part:name` in one tag (`none` when no check fired), so
# the runs list can filter on it, and one tag per flag holding the line that explains it.
TAG_MASKING = "masking_flags"
TAG_MASKING_FLAG = "masking_flag"
# A finalist's second evaluation: the fingerprint of the final settings it was logged with (set
# after its metrics, so it marks a finished write), and the parent's record of the final front.
TAG_FINAL = "final_settings"
TAG_FINAL_FRONT = "final_front_ids"
# A complete trial's trained model: the weights_only file that `nsr-tune evaluate` reads, as an
# artifact of its run; the tag marks it logged.
MODEL_ARTIFACT = "model/model.pt"
TAG_MODEL = "nsr_tune.model"


def masking_tags(report: Mapping[str, Any]) -> dict[str, str]:
    """The tags of a final report's masking flags (see TAG_MASKING), and of what its evaluation
    skipped (`skipped.PART.NAME`: why)."""
    flags = reported_flags(report)
    tags = {TAG_MASKING: flags_text([f.label for f in flags])}
    tags.update({f"{TAG_MASKING_FLAG}.{f.part}.{f.name}": f.why for f in flags})
    for part in ("val", "test"):
        skipped = report.get(f"{part}_skipped")
        if isinstance(skipped, Mapping):
            tags.update({f"skipped.{part}.{name}": str(why) for name, why in skipped.items()})
    return tags
