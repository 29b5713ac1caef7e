"""Long work started from a page (an ingest: OCR takes seconds a page) runs in a background thread of the web
process; the page that started it shows its progress, refreshing itself, then its result."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Job:
    """One piece of work and how far it has come; also the preserve.progress.Progress the work reports to."""

    key: str
    owner: str
    label: str = ""
    total: int | None = None
    count: int = 0
    state: str = "running"          # running | finished | failed
    result: Any = None
    error: str | None = None
    hint: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def start(self, label: str, total: int | None, unit: str = "items") -> None:
        self.label, self.total, self.count = label, total, 0

    def advance(self, n: int = 1) -> None:
        self.count += n

    def done(self) -> None:
        pass


class Jobs:
    """At most one job per key (an upload); a job is kept an hour after it finishes, so its page can show it."""

    KEEP = 3600.0

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Job | None:
        with self._lock:
            self._forget_old()
            return self._jobs.get(key)

    def start(self, key: str, owner: str, work: Callable[[Any], Any],
              describe: Callable[[BaseException], tuple[str, str | None]]) -> Job:
        """Run `work(progress)` in a thread unless a job for `key` is running; returns the job."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state == "running":
                return job
            job = self._jobs[key] = Job(key, owner)

        def run() -> None:
            try:
                job.result = work(job)
                job.state = "finished"
            except BaseException as e:  # noqa: BLE001 - shown on the job's page
                job.error, job.hint = describe(e)
                job.state = "failed"
            job.finished = time.time()

        threading.Thread(target=run, name=f"job-{key}", daemon=True).start()
        return job

    def _forget_old(self) -> None:
        now = time.time()
        for k in [k for k, j in self._jobs.items() if j.finished is not None and now - j.finished > self.KEEP]:
            del self._jobs[k]
