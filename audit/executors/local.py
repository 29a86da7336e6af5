"""The local executor: a pool over the visible GPUs (each run gets `devices` of them through
CUDA_VISIBLE_DEVICES) or, without GPUs, over CPU slots (`jobs`, default 1; each slot's runs get
an equal share of the cores). One process per run."""

from __future__ import annotations

import os
import queue
import threading

from audit.executors.common import Outcome, WorkItem, execute
from audit.executors.progress import Reporter
from audit.store import Store
from transfg.machine import SmiError, gpu_lines


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        lines = gpu_lines() or []
    except SmiError:  # nvidia-smi failed: no GPU this pool can count on
        lines = []
    return [str(i) for i in range(len(lines))]


def slots(devices: int, jobs: int | None, gpus: list[str] | None = None) -> list[dict]:
    """The environment of each slot: a group of `devices` GPUs, or a CPU share."""
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        groups = [gpus[i:i + devices] for i in range(0, len(gpus) - devices + 1, devices)]
        if not groups:
            raise RuntimeError(f"runs need {devices} GPUs each; {len(gpus)} visible")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(g)} for g in groups[:jobs or len(groups)]]
    count = jobs or 1
    threads = max(1, (os.cpu_count() or 1) // count)
    env = {"OMP_NUM_THREADS": str(threads)} if count > 1 else {}
    return [dict(env) for _ in range(count)]


def run_local(store: Store, items: list[WorkItem], *, jobs: int | None = None,
              retry_failed: bool = False, keep_corrupt: bool = False,
              reporter: Reporter | None = None, gpus: list[str] | None = None
              ) -> list[Outcome]:
    """items: {run_id, spec (dict), fingerprints, label}. Returns one Outcome per item."""
    if not items:
        return []
    devices = max(item["spec"]["devices"] for item in items)
    envs = slots(devices, jobs, gpus)
    todo: queue.Queue = queue.Queue()
    for item in items:
        todo.put(item)
    outcomes: list[Outcome] = []
    owner = f"audit run (pid {os.getpid()})"

    def worker(env: dict) -> None:
        while True:
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            run_id, label = item["run_id"], item["label"]
            def started(run_id=run_id, label=label, steps=item["spec"]["train"]["steps"]):
                if reporter:
                    reporter.started(run_id, label, store.path(run_id), steps)

            outcome = execute(store, run_id, item["spec"], item["fingerprints"], owner=owner,
                              env=env, retry_failed=retry_failed, keep_corrupt=keep_corrupt,
                              on_start=started)
            outcomes.append(outcome)
            if reporter:
                detail = outcome.message if outcome.state != "done" else ""
                if outcome.state == "done":
                    result = store.result(run_id) or {}
                    detail = f"accuracy {100 * result.get('final_accuracy', float('nan')):.2f}%"
                reporter.finished(run_id, label, outcome.state, outcome.seconds, detail)

    threads = [threading.Thread(target=worker, args=(env,), daemon=True) for env in envs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
