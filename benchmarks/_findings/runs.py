"""The runs behind the findings: commands, each kept with what it wrote, run at most once.

A run is one command (`nsr-tune train`, `nsr-tune evaluate`, a benchmark script) writing into its
own directory under the runs root. When it ends well, `run.json` beside its outputs records the
command, the seconds it took, when it finished, on what and with how many torch threads. A run
whose `run.json` holds the same command is done and is not run again; change a command (another
seed, more epochs) and only that run, and the runs that read it, run anew.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("findings")

RUN_FILE = "run.json"


@dataclass(frozen=True)
class Run:
    """One command. `argv` runs from the repository root; `after` names the runs whose outputs it
    reads. `makes_dir`: the command creates its directory itself (`nsr-tune train --out`)."""

    name: str
    argv: tuple[str, ...]
    after: tuple[str, ...] = ()
    makes_dir: bool = False

    def directory(self, root: Path) -> Path:
        return root / self.name

    def record(self, root: Path) -> dict | None:
        """This run's run.json, if it finished with this very command; else None."""
        path = self.directory(root) / RUN_FILE
        if not path.is_file():
            return None
        done = json.loads(path.read_text())
        return done if tuple(done["command"]) == self.argv else None


def _holder(lock: Path) -> int | None:
    """The live pid that holds `lock`, or None (no lock, or its build has died)."""
    try:
        pid = int(lock.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid


def device() -> str:
    """The machine, in words: CPU model and cores (the findings run on CPU unless a run says so)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


@dataclass
class Executor:
    """Runs `runs` in dependency order, `jobs` at a time, each with `threads` torch threads, from `repo`."""

    repo: Path
    root: Path
    jobs: int
    threads: int
    failed: list[str] = field(default_factory=list)

    def run_all(self, runs: Sequence[Run]) -> None:
        todo = {r.name: r for r in runs if r.record(self.root) is None}
        if not todo:
            return
        log.info("%d of %d runs to do: %s", len(todo), len(runs), ", ".join(todo))
        running: dict[str, tuple[subprocess.Popen, float]] = {}
        while todo or running:
            for name in [n for n, r in todo.items() if r.record(self.root) is not None]:
                log.info("%s: finished by another build", todo.pop(name).name)
            busy = [n for n in todo if _holder(self._lock(n)) not in (None, os.getpid())]
            free = self.jobs - len(running) - len(busy)
            ready = [n for n, r in todo.items() if n not in busy and self._ready(r, todo, running)]
            ready.sort(key=lambda n: todo[n].makes_dir)  # what reads a model first: it ends a finding sooner
            for name in ready[: max(free, 0)]:
                running[name] = (self._start(todo.pop(name)), time.monotonic())
            for name in [n for n, r in todo.items() if any(a in self.failed for a in r.after)]:
                log.error("%s: not run, it reads %s, which failed", name, todo.pop(name).after)
                self.failed.append(name)
            if not running and not busy:
                if todo:  # nothing can start: an input is missing and is not among these runs
                    raise RuntimeError(f"runs wait on runs that are not planned: {sorted(todo)}")
                break
            time.sleep(2)
            for name, (proc, start) in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    self._finish(name, proc, time.monotonic() - start, runs)

    def _lock(self, name: str) -> Path:
        return self.root / f"{name}.lock"

    def _ready(self, run: Run, todo: dict, running: dict) -> bool:
        return not any(a in todo or a in running or a in self.failed for a in run.after)

    def _start(self, run: Run) -> subprocess.Popen:
        out = run.directory(self.root)
        if not run.makes_dir:
            out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        argv = [sys.executable if a == "python" else a for a in run.argv]
        log.info("start %s: %s", run.name, " ".join(run.argv))
        logfile = self.root / f"{run.name}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        self._lock(run.name).write_text(f"{os.getpid()}\n")
        with logfile.open("w") as fh:
            return subprocess.Popen(argv, cwd=self.repo, env=env, stdout=fh, stderr=subprocess.STDOUT)

    def _finish(self, name: str, proc: subprocess.Popen, seconds: float, runs: Sequence[Run]) -> None:
        run = next(r for r in runs if r.name == name)
        self._lock(name).unlink(missing_ok=True)
        if proc.returncode != 0:
            log.error("%s failed (exit %d): see %s", name, proc.returncode, self.root / f"{name}.log")
            self.failed.append(name)
            return
        record = {
            "command": list(run.argv),
            "seconds": round(seconds, 1),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "device": device(),
            "threads": self.threads,
        }
        (run.directory(self.root) / RUN_FILE).write_text(json.dumps(record, indent=1) + "\n")
        log.info("done %s in %.0f s", name, seconds)
