"""A one-node Slurm cluster on this machine, for tests: its own munged (a key and a socket of its
own), slurmctld and slurmd, all in one temporary folder with a minimal slurm.conf (the node is
this machine as `slurmd -C` measures it, one partition, no accounting, no cgroups), stopped and
removed after. Needs root (slurmd starts jobs as their users) and Debian's slurm-wlm and munge
(`.ci/setup` installs them).

    cluster = start()            # SlurmUnavailable(reason) where it cannot
    subprocess.run(["sinfo"], env={**os.environ, **cluster.env})
    cluster.stop()

`python tests/slurm_cluster.py` starts one and keeps it until Ctrl-C (it prints the SLURM_CONF
to export), to try `audit run --executor slurm` by hand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "squeue", "sbatch", "srun", "scancel", "scontrol")
SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
PARTITION = "audit"
KILL_WAIT = 5  # seconds between SIGTERM and SIGKILL when Slurm stops a job (Slurm's default: 30)


class SlurmUnavailable(Exception):
    """Slurm cannot run here; the message says why (and the daemons' last log lines)."""


def which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path=SBIN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> str:
    """The node's CPUs, sockets, cores, threads and memory as slurmd measures them (a node
    configured with more than it has is drained)."""
    try:
        out = subprocess.run([which("slurmd"), "-C"], capture_output=True, text=True,
                             timeout=30, check=True).stdout.split()
        keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore",
                "RealMemory")
        fields = [word for word in out if word.split("=")[0] in keys]
        if len(fields) == len(keys):
            return " ".join(fields)
    except (OSError, subprocess.SubprocessError, TypeError):
        pass
    return f"CPUs={os.cpu_count() or 1}"


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"  ({path.name}: none)"
    return "\n".join(f"  {path.name}: {line}" for line in text) or f"  ({path.name}: empty)"


@dataclass
class Cluster:
    folder: Path
    conf: Path
    node: str
    partition: str = PARTITION
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """What a command needs to talk to this cluster (the clients read SLURM_CONF)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                              check=check, env={**os.environ, **self.env})

    def logs(self) -> str:
        return "\n".join(_tail(self.folder / "log" / f"{name}.log") for name in DAEMONS)

    def jobs(self) -> list[str]:
        out = self.run("squeue", "--noheader", "--format=%i", check=False)
        return out.stdout.split() if out.returncode == 0 else []

    def leftovers(self) -> list[int]:
        """Processes of this cluster's jobs (slurmstepd and what the jobs started), found by the
        SLURM_CONF they inherited; not the daemons, not this process."""
        mine = f"SLURM_CONF={self.conf}".encode()
        daemons = {p.pid for p in self.processes.values()}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in daemons | {os.getpid()}:
                continue
            try:
                if (entry / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
                    continue  # a zombie: ended, waiting for its parent
                environ = (entry / "environ").read_bytes().split(b"\0")
                command = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except (OSError, IndexError):
                continue
            if mine in environ and (any(v.startswith(b"SLURM_JOB_ID=") for v in environ)
                                    or command.startswith(b"slurmstepd")):
                found.append(int(entry.name))
        return found

    def stop(self) -> list[int]:
        """Cancel every job, stop the daemons, kill what the jobs left behind, remove the
        folder. Returns the pids that had to be killed after the daemons were stopped."""
        jobs = self.jobs() if self.processes.get("slurmctld") else []
        if jobs:
            self.run("scancel", *jobs, check=False)
            deadline = time.monotonic() + KILL_WAIT + 20
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(0.5)
        for name in reversed(DAEMONS):  # slurmd, slurmctld, then munged
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        killed = self.leftovers()
        for pid in killed:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)
        return killed


def start(timeout: float = 60) -> Cluster:
    """Start munged, slurmctld and slurmd in a new temporary folder and wait until the node is
    idle. SlurmUnavailable says why it could not (nothing is left running then)."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise SlurmUnavailable("needs root (slurmd starts each job as its user); run the tests "
                               "as root")
    missing = [p for p in DAEMONS + CLIENTS if which(p) is None]
    if missing:
        raise SlurmUnavailable(f"not installed: {', '.join(missing)} (Debian: apt-get install "
                               "slurm-wlm munge, which `bash .ci/setup` does as root)")
    # /tmp rather than pytest's folder: munged wants a short socket path in a folder every user
    # can traverse (pytest's is private to its user).
    folder = Path(tempfile.mkdtemp(prefix="audit-slurm-"))
    folder.chmod(0o755)
    for name in ("munge", "state", "spool", "log"):
        (folder / name).mkdir(mode=0o755)
    key = folder / "munge" / "munge.key"  # this cluster's own key: a real /etc/munge/munge.key
    key.write_bytes(os.urandom(1024))  # and the system's munged are never touched
    key.chmod(0o600)
    socket_path = folder / "munge" / "munge.socket"
    node = socket.gethostname().split(".")[0] or "localhost"
    conf = folder / "slurm.conf"
    conf.write_text(f"""\
# A one-node cluster for tests (tests/slurm_cluster.py).
ClusterName=audit-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket={socket_path},cred_expire=5
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={folder / "slurmctld.pid"}
SlurmdPidFile={folder / "slurmd.pid"}
SlurmctldLogFile={folder / "log" / "slurmctld.log"}
SlurmdLogFile={folder / "log" / "slurmd.log"}
# no cgroups (containers often have none): processes tracked through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# a job that becomes eligible (a requeued one, after cred_expire) starts within a second, not at
# the next pass of the main or backfill scheduler (every 60 and 30 s by default)
SchedulerParameters=sched_interval=1,bf_interval=1
ReturnToService=2
KillWait={KILL_WAIT}
MinJobAge=300
NodeName={node} NodeAddr=127.0.0.1 {_node_hardware()} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    cluster = Cluster(folder, conf, node)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")},
           **cluster.env}
    try:
        logs = folder / "log"
        commands = {
            "munged": [which("munged"), "--foreground", f"--key-file={key}",
                       f"--socket={socket_path}", f"--pid-file={folder / 'munge' / 'pid'}",
                       f"--seed-file={folder / 'munge' / 'seed'}",
                       f"--log-file={logs / 'munged.log'}"],
            "slurmctld": [which("slurmctld"), "-D", "-f", str(conf)],
            "slurmd": [which("slurmd"), "-D", "-f", str(conf), "-N", node],
        }
        for name, command in commands.items():
            with open(logs / f"{name}.out", "wb") as output:
                cluster.processes[name] = subprocess.Popen(
                    command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True)
            if name == "munged":
                _wait(cluster, lambda: socket_path.exists(), 20, "munged's socket")
        _wait(cluster, lambda: cluster.run("sinfo", "--noheader", "--nodes", node,
                                           "--format=%T", check=False).stdout.strip() == "idle",
              timeout, f"node {node} idle in sinfo")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait(cluster: Cluster, ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        ended = {name: p.returncode for name, p in cluster.processes.items()
                 if p.poll() is not None}
        if ended or time.monotonic() > deadline:
            why = (", ".join(f"{name} exited with status {code}" for name, code in ended.items())
                   if ended else f"no {what} after {timeout:.0f} s")
            outputs = "\n".join(_tail(cluster.folder / "log" / f"{name}.out", 5)
                                for name in cluster.processes)
            raise SlurmUnavailable(f"the one-node cluster did not start: {why}\n"
                                   f"{cluster.logs()}\n{outputs}")
        time.sleep(0.2)


if __name__ == "__main__":
    cluster = start()
    print(f"export SLURM_CONF={cluster.conf}  # partition {cluster.partition}; Ctrl-C stops it",
          flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
