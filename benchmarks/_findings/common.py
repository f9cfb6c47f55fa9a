"""What every finding shares: the settings of one build, and how its runs are spelled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from _findings.runs import Run

# The paper's reported figures (Ma & Liang, arXiv 2110.09759, MIT-BIH, 810 class-balanced beats).
PAPER_CLEAN, PAPER_EPS, PAPER_ROBUST = 0.919, 0.1, 0.520
FOUR = ("N", "S", "V", "F")


@dataclass(frozen=True)
class Settings:
    """One build of the page. `quick`: the bundled records, one seed, one epoch, a few beats: a
    smoke test of the whole pipeline that measures nothing."""

    quick: bool
    data: Path  # ../shared/data: mitdb/, cpsc2018/, nstdb/
    root: Path  # where the runs keep their outputs

    @property
    def mitdb(self) -> str:
        return "bundled" if self.quick else str(self.data / "mitdb")

    @property
    def seeds(self) -> tuple[int, ...]:
        return (0,) if self.quick else (0, 1, 2)

    @property
    def epochs(self) -> str:
        return "1" if self.quick else "10"

    @property
    def eval_beats(self) -> str:
        return "6" if self.quick else "50"

    @property
    def eps(self) -> tuple[str, ...]:
        return ("0.01", "0.05") if self.quick else ("0.01", "0.03", "0.05", "0.1")

    def path(self, run: str, file: str) -> str:
        return str(self.root / run / file)


def train(s: Settings, name: str, *flags: str) -> Run:
    """`nsr-tune train` into the run's directory (its end-of-training evaluation: `quick`)."""
    if s.quick:
        flags = (*flags, "--max-train-beats", "1500")
    argv = ("nsr-tune", "train", "--data-dir", s.mitdb, *flags, "--protocol", "quick", "-q")
    return Run(name, (*argv, "--out", str(s.root / name)), makes_dir=True)


def evaluate(
    s: Settings,
    name: str,
    model: str,
    *,
    protocol: str,
    eps: tuple[str, ...],
    beats: str,
    surrogate: str | None = None,
) -> Run:
    """`nsr-tune evaluate` of run `model`'s model.pt, writing eval.json and each beat's outcome.

    Quick mode evaluates every model under the cheap `quick` protocol, whatever `protocol` says:
    it checks the pipeline from runs to page, not the attacks (their own tests do that)."""
    if s.quick:
        protocol, surrogate = "quick", None
    argv = [
        "nsr-tune", "evaluate", s.path(model, "model.pt"), "--data-dir", s.mitdb,
        "--protocol", protocol, "--eps", *eps, "--eval-beats", beats, "-q",
        "--out", s.path(name, "eval.json"), "--beats", s.path(name, "beats.npz"),
    ]  # fmt: skip
    after = (model,)
    if surrogate is not None and protocol == "strong":
        argv += ["--surrogate", s.path(surrogate, "model.pt")]
        after += (surrogate,)
    return Run(name, tuple(argv), after=after)


def cnn(split: str, objective: str, seed: int, s: Settings, nsr_eps: str = "1") -> Run:
    """The paper's CNN on the paper's input, CE or NSR beta 0.3, `s.epochs` epochs of Adam."""
    tag = {"ce": "ce", "nsr": "nsr" if nsr_eps == "1" else f"nsr{nsr_eps.replace('.', '')}"}[objective]
    flags = ["--model", "cnn", "--objective", objective]
    if objective == "nsr":
        flags += ["--beta", "0.3", "--nsr-eps", nsr_eps]
    flags += ["--split", split, "--epochs", s.epochs, "--seed", str(seed)]
    return train(s, f"{split}-{tag}-s{seed}", *flags)


def rr30(seed: int, s: Settings) -> Run:
    """The best clean inter-patient recipe (docs/findings.md): rrcnn on a 30 s look-back."""
    epochs = "1" if s.quick else "20"
    flags = ["--model", "rrcnn", "--input", "lookback30", "--knob", "fusion_by_shape=1"]
    flags += ["--objective", "nsr", "--beta", "0.3", "--split", "inter", "--epochs", epochs]
    flags += ["--schedule", "cosine", "--seed", str(seed)]
    return train(s, f"inter-rr30-s{seed}", *flags)
