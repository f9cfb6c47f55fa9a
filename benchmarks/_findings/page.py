"""docs/results.md from the findings' JSON files: nothing on the page is typed by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from _findings.base import Finding

HEADER = """# Results

What nsr-tune has measured about the NSR regulariser (Ma & Liang, arXiv 2110.09759) and about
classifying MIT-BIH beats across patients. This page is written by a script; do not edit it.
Each finding states the claim it tests, its numbers with 95% intervals, a verdict, and how it was
run: the commands, the data, the seeds, the machine and the time. The raw numbers are the JSON
files in [results/](results/), the figures the PNG files beside them.

```bash
python benchmarks/findings.py                  # run what is missing, then rebuild this page
python benchmarks/findings.py --only inter_table   # one finding
python benchmarks/findings.py --skip-missing   # rebuild from the runs that have finished, run nothing
python benchmarks/findings.py --plan           # list each finding's runs, done or not
```

The command is incremental: every run keeps its outputs under `runs/findings/` with the command
that made them, a run whose command has not changed is not run again, and a finding whose runs
have not changed is not summarised again. The intervals resample records (patients) with the
same draw for every seed and average the seeds, so they hold both the patients' and the seeds'
spread ([evaluation.md](evaluation.md) explains why records and not beats).
"""


def render(findings: Sequence[Finding], results: Mapping[str, Mapping[str, Any]]) -> str:
    """The whole page: the header, the verdicts at a glance, then one section per finding."""
    parts = [HEADER, "## At a glance\n"]
    for k, f in enumerate(findings, 1):
        r = results.get(f.name)
        verdict = r["numbers"]["verdict"] if r and r.get("numbers") else "not run yet."
        parts.append(f"{k}. [{f.title}](#{_anchor(k, f.title)}): {verdict}")
    parts.append("")
    claims = paper_claims(results)
    if claims:
        parts += ["## What holds of the paper's claims\n", claims, ""]
    for k, f in enumerate(findings, 1):
        parts.append(section(k, f, results.get(f.name)))
    return "\n".join(parts).rstrip() + "\n"


def _anchor(k: int, title: str) -> str:
    text = f"{k} {title}".lower()
    keep = "".join(c for c in text if c.isalnum() or c in " -_")
    return keep.replace(" ", "-")


def section(k: int, f: Finding, r: Mapping[str, Any] | None) -> str:
    lines = [f"## {k}. {f.title}\n", f"**Claim.** {f.claim}\n"]
    numbers = r.get("numbers") if r else None
    if numbers:
        lines.append(f"**Verdict.** {numbers['verdict']}\n")
        if r.get("figure"):
            lines.append(f"![{f.title}](results/{r['figure']})\n")
        lines.append(f.body(numbers) + "\n")
    else:
        why = f.not_here or "its runs have not finished on the machine that built this page"
        lines.append(f"**Not run yet**: {why}.\n")
    if f.note:
        lines.append(f.note + "\n")
    if r:
        lines.append(_provenance(r))
    return "\n".join(lines)


def _provenance(r: Mapping[str, Any]) -> str:
    lines = ["**How it was run.**"]
    if r.get("runs"):
        hours = sum(x["seconds"] for x in r["runs"]) / 3600
        devices = sorted(
            {f"{x.get('device', '?')}, {x['threads']} torch thread(s) per run" for x in r["runs"]}
        )
        lines.append(
            f"{len(r['runs'])} run{'s' if len(r['runs']) != 1 else ''}, {hours:.1f} hours of runs in all, "
            + f"on {'; '.join(devices)}; "
            f"data: {r['data']}; seeds: {', '.join(map(str, r['seeds'])) or '-'}; "
            f"last run finished {max(x['finished'] for x in r['runs'])}. "
            f"Numbers: [results/{r['name']}.json](results/{r['name']}.json).\n"
        )
        lines.append("```bash")
        lines += [f"{x['command']}    # {x['seconds']:.0f} s" for x in r["runs"]]
        lines.append("```")
    if r.get("missing"):
        lines.append(
            f"\nNot finished yet ({len(r['missing'])} runs); "
            f"`python benchmarks/findings.py --only {r['name']}` runs:\n"
        )
        lines.append("```bash")
        lines += [x["command"] for x in r["missing"]]
        lines.append("```")
    return "\n".join(lines) + "\n"


def paper_claims(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Three sentences on the paper's claims, from findings 1 and 2; empty until both have numbers."""
    curves = (results.get("intra_curves") or {}).get("numbers")
    paper = (results.get("paper_number") or {}).get("numbers")
    if not curves or not paper:
        return ""
    eps = curves["eps"]
    nsr, ce = curves["curves"]["nsr"], curves["curves"]["ce"]
    lead = [e for e in eps if nsr["strong"]["robust"][str(e)]["low"] > ce["strong"]["robust"][str(e)]["high"]]
    gone = [e for e in eps if nsr["strong"]["robust"][str(e)]["value"] < 0.1]
    row = paper["rows"][0]
    pgd, strong = row["standard"]["robust"]["0.1"], row["strong"]["robust"]["0.1"]
    first = (
        f"NSR does make the paper's CNN more robust than CE: under the strong cascade its lead holds "
        f"with intervals apart at eps {', '.join(f'{e:g}' for e in lead)}"
        if lead
        else "Under the strong cascade NSR's lead over CE is not separable from chance at any eps"
    )
    first += f", and NSR keeps less than 0.1 of the beats from eps {gone[0]:g}." if gone else "."
    second = (
        f"The paper's headline, 0.520 at eps 0.1, is a PGD number: our NSR models hold "
        f"{pgd['value']:.3f} [{pgd['low']:.3f}, {pgd['high']:.3f}] under PGD-100 and "
        f"{strong['value']:.3f} [{strong['low']:.3f}, {strong['high']:.3f}] under the strong cascade."
    )
    clean_nsr, clean_ce = nsr["strong"]["clean"]["value"], ce["strong"]["clean"]["value"]
    near = "close to" if abs(clean_nsr - 0.919) <= 0.02 else ("above" if clean_nsr > 0.919 else "below")
    third = (
        f"NSR's clean accuracy, {clean_nsr:.3f} on the class-balanced beats, is {near} the paper's 0.919, "
        f"and {clean_ce - clean_nsr:.3f} below CE's {clean_ce:.3f}."
    )
    return " ".join((first, second, third))
