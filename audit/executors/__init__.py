"""Executors run planned runs: `local` (a pool over this machine's GPUs or CPU slots) and `slurm`
(one Slurm job per run through submitit). Both execute a run the same way (`common.execute`):
claim it, write its spec and provenance, start `python -m transfg.train RUN_DIR` in its own
process, record how it ended, release the claim."""
