"""One optimizer update, prediction and checkpoint state in Jittor; mirrors
`transfg/torch/engine.py` method for method (`transfg.engine.TrainingEngine`).

Several devices: `mpirun -np N python -m transfg.train RUN_DIR` (jittor's own MPI support; each
process reads its own shard of the deterministic order). The gradients of an update's
micro-batches accumulate in each process and are averaged over the processes once, before
clipping, as DistributedDataParallel does in the PyTorch engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import jittor as jt
import numpy as np

from transfg.spec import RunSpec
from transfg.weights import State

from .data import make_loader
from .losses import transfg_loss
from .model import VisionTransformer
from .weights import export_state, load_state


@contextlib.contextmanager
def local_gradients():
    """Under MPI, jittor's optimizer averages the gradients over the processes at every backward
    call (and broadcasts the parameters at its first); inside this block it does neither, so an
    update's micro-batches accumulate in each process, and the engine averages once."""
    in_mpi = jt.in_mpi
    jt.in_mpi = False
    try:
        yield
    finally:
        jt.in_mpi = in_mpi


class Engine:
    framework = "jittor"

    def __init__(self, spec: RunSpec, state: State):
        self.spec = spec
        self.rank: int = jt.rank if jt.in_mpi else 0
        self.world: int = jt.world_size if jt.in_mpi else 1
        if self.world != spec.devices:
            raise ValueError(f"devices={spec.devices} in the spec, but {self.world} process(es) "
                             f"were started (launch with mpirun -np {spec.devices} python -m "
                             "transfg.train RUN_DIR)")
        if spec.train.activation_checkpointing:
            raise ValueError("train.activation_checkpointing=True: the Jittor engine has no "
                             "activation checkpointing; use the torch framework or turn it off")
        if spec.train.attention != "explicit":
            raise ValueError(f"train.attention={spec.train.attention!r}: the Jittor engine has "
                             "explicit attention only (jittor 1.3 has no fused attention kernel); "
                             "use attention=\"explicit\" or the torch framework")
        if spec.train.precision != "fp32":
            raise ValueError(f"precision={spec.train.precision}: the Jittor engine trains in fp32 "
                             "only (jittor 1.3 has no autocast with loss scaling to match)")
        self.model = VisionTransformer(spec.model)
        load_state(self.model, state, "initial weights")
        self.model.train()
        self.names = [name for name, _ in self.model.named_parameters()]
        t = spec.train
        self.optimizer = jt.optim.SGD(self.model.parameters(), lr=t.learning_rate,
                                      momentum=t.momentum, weight_decay=t.weight_decay)

    def seed(self, seed: int) -> None:
        # jittor keeps its seed as a signed 32-bit int and its Dataset workers reseed numpy from
        # it: a seed >= 2**31 comes back negative and kills every loader worker. Under MPI every
        # process takes the same seed (jittor would add rank * 2591), as in the PyTorch engine
        # and the official code.
        jt.set_global_seed(seed % 2**31, different_seed_for_mpi=False)

    def train_step(self, micro_batches: Sequence, lr: float) -> dict[str, float]:
        self.optimizer.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        totals = {"loss": 0.0, "ce": 0.0, "contrastive": 0.0}
        with local_gradients():
            for images, labels, _ in micro_batches:
                logits, out = self.model(images)
                parts = transfg_loss(logits, out["cls_feature"], labels, self.spec.model)
                self.optimizer.backward(parts["loss"] / len(micro_batches))
                for name in totals:
                    totals[name] += float(parts[name].item()) / len(micro_batches)
        grads = [g for group in self.optimizer.param_groups for g in group["grads"]]
        if self.world > 1:  # the mean gradient, and the mean losses, over the processes
            # One collective for all gradients, run before the next: MPI pairs collectives by
            # the order each process calls them, and jittor's lazy graph fixes no order among
            # independent ones.
            flat = jt.concat([g.flatten() for g in grads]).mpi_all_reduce("mean")
            flat.sync()
            start = 0
            for g in grads:
                g.update(flat[start:start + g.numel()].reshape(g.shape))
                start += g.numel()
            values = jt.array(np.array(list(totals.values()), np.float32)).mpi_all_reduce("mean")
            totals = dict(zip(totals, map(float, values.numpy()), strict=True))
        # Clipped here rather than by optimizer.clip_grad_norm, which computes the same norm but
        # does not return it: the same coefficient, max / (norm + 1e-6), capped at 1. The norm
        # sums each gradient's squares in float64: one float32 sum over all 86M gradients of
        # ViT-B/16 came out 0.13% off PyTorch's and the official code's norm (which combine
        # per-tensor norms), and every clipped update with it.
        total = jt.sqrt(sum((g.float64() ** 2).sum() for g in grads))
        coefficient = jt.minimum(self.spec.train.max_grad_norm / (total + 1e-6), 1.0).float32()
        for g in grads:
            g.update(g * coefficient)
        norm = float(total.item())
        self.optimizer.step()
        jt.sync_all()
        return totals | {"grad_norm": norm}

    def predict(self, images) -> np.ndarray:
        self.model.eval()  # note: jittor's eval() also stops gradients; train() restores them
        with jt.no_grad():
            logits, _ = self.model(images)
            result = logits.numpy()
        self.model.train()
        return result

    def loader(self, view, batch: int, *, drop_last: bool):
        return make_loader(view, batch, self.spec.train.workers, drop_last=drop_last)

    def export(self) -> tuple[State, dict[str, np.ndarray]]:
        values = [v for group in self.optimizer.param_groups for v in group["values"]]
        momentum = {f"momentum/{name}": v.numpy().astype(np.float32)
                    for name, v in zip(self.names, values, strict=True)}
        return export_state(self.model), momentum

    def restore(self, state: State, optimizer: dict[str, np.ndarray]) -> None:
        load_state(self.model, state, "checkpoint")
        values = [v for group in self.optimizer.param_groups for v in group["values"]]
        for name, value in zip(self.names, values, strict=True):
            value.assign(optimizer[f"momentum/{name}"])

    def gather(self, shard: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Every process's shard (dict of arrays with rows), in rank order, on every process:
        each process writes its rows into its own block of zeros and a sum over the processes
        fills every block. The values travel as float32 (jittor turns 64-bit arrays into 32-bit
        ones), which holds the scores exactly and integers below 2**24 (checked)."""
        if self.world == 1:
            return [shard]
        rows = len(next(iter(shard.values())))
        for key, value in shard.items():
            if value.dtype.kind in "iu" and value.size and np.abs(value).max() >= 2**24:
                raise ValueError(f"{key}: integers from 2**24 on cannot be gathered exactly")
        counts = np.zeros(self.world, np.float32)
        counts[self.rank] = rows
        counts = jt.array(counts).mpi_all_reduce("add").numpy().astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)])
        everything = {}
        for key, value in shard.items():
            block = np.zeros((starts[-1], *value.shape[1:]), np.float32)
            block[starts[self.rank]:starts[self.rank + 1]] = value
            block = jt.array(block).mpi_all_reduce("add").numpy()
            everything[key] = block.astype(value.dtype)
        return [{key: value[starts[r]:starts[r + 1]] for key, value in everything.items()}
                for r in range(self.world)]

    def close(self) -> None:
        pass

    def memory_mb(self) -> float | None:
        return None
