"""One optimizer update, prediction and checkpoint state in PyTorch, for `transfg.train`'s loop.

`transfg/jittor/engine.py` has the same class with the same methods (`transfg.engine`'s
`TrainingEngine`); the loop itself (data, schedule, evaluation, files) is framework-neutral and
lives in `transfg/train.py`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from transfg.spec import RunSpec
from transfg.weights import State

from .data import make_loader
from .losses import transfg_loss
from .model import VisionTransformer, use_fused_attention
from .weights import export_state, load_state

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class Engine:
    framework = "torch"

    def __init__(self, spec: RunSpec, state: State):
        self.spec = spec
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if self.world != spec.devices:
            raise ValueError(f"devices={spec.devices} in the spec, but {self.world} process(es) "
                             f"were started (launch with torchrun --nproc_per_node "
                             f"{spec.devices})")
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", 0))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device("cpu")
        if spec.train.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision=fp16 needs a GPU (its loss scaling is CUDA's); use bf16 "
                             "or fp32 on the CPU")
        self.model = VisionTransformer(spec.model)
        self.model.transformer.encoder.checkpointing = spec.train.activation_checkpointing
        use_fused_attention(self.model, spec.train.attention == "fused")
        if spec.model.variant == "vit":  # no block's maps are read in training or evaluation
            self.model.transformer.encoder.return_attention = False
        load_state(self.model, state, "initial weights")
        self.model.to(self.device).train()
        self.forward: torch.nn.Module = self.model
        if self.world > 1:  # torchrun's environment; gradients averaged over the processes
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.forward = DistributedDataParallel(self.model)
        self.names = [name for name, _ in self.model.named_parameters()]
        t = spec.train
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=t.learning_rate,
                                         momentum=t.momentum, weight_decay=t.weight_decay)
        # fp16 needs loss scaling (the official code: apex O2, initial scale 2^20); bf16 does not.
        self.scaler = torch.amp.GradScaler("cuda", init_scale=2.0**20,
                                           enabled=t.precision == "fp16")

    def autocast(self):
        if self.spec.train.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.spec.train.precision])

    def seed(self, seed: int) -> None:
        """Dropout masks of the next update (reseeded every update, so a resumed run repeats)."""
        torch.manual_seed(seed)

    def train_step(self, micro_batches: Sequence, lr: float) -> dict[str, float]:
        """One update: each micro-batch computes its own loss (contrastive included) and
        contributes loss / len(micro_batches) to the gradient; then clipping and SGD at `lr`."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "ce": 0.0, "contrastive": 0.0}
        for k, (images, labels, _) in enumerate(micro_batches):
            images, labels = images.to(self.device), labels.to(self.device)
            last = k == len(micro_batches) - 1  # only then do the processes average gradients
            sync = (contextlib.nullcontext() if last or self.world == 1
                    else self.forward.no_sync())  # type: ignore[operator]  # DDP's method
            with sync:
                with self.autocast():
                    logits, out = self.forward(images)
                    # The attention maps are returned for the PSM and the demo; dropping them
                    # here lets activation checkpointing free them before the backward pass.
                    del out["attn_weights"]
                    parts = transfg_loss(logits.float(), out["cls_feature"].float(), labels,
                                         self.spec.model)
                self.scaler.scale(parts["loss"] / len(micro_batches)).backward()
            for name in totals:
                totals[name] += float(parts[name].detach()) / len(micro_batches)
        if self.world > 1:  # report the mean over all processes' micro-batches
            values = torch.tensor([totals[n] for n in totals], dtype=torch.float64)
            dist.all_reduce(values)
            totals = {n: float(v) / self.world for n, v in zip(totals, values, strict=True)}
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                              self.spec.train.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return totals | {"grad_norm": float(norm)}

    def predict(self, images) -> np.ndarray:
        """Logits (B, classes) as float32 numpy, in evaluation mode (no dropout)."""
        self.model.eval()
        with torch.no_grad(), self.autocast():
            logits, _ = self.model(images.to(self.device))
        self.model.train()
        return logits.float().cpu().numpy()

    def loader(self, view, batch: int, *, drop_last: bool):
        return make_loader(view, batch, self.spec.train.workers, drop_last=drop_last,
                           pin_memory=self.device.type == "cuda")

    def export(self) -> tuple[State, dict[str, np.ndarray]]:
        """(model state, optimizer state: one momentum buffer per parameter)."""
        momentum = {}
        for name, param in zip(self.names, self.model.parameters(), strict=True):
            buffer = self.optimizer.state.get(param, {}).get("momentum_buffer")
            momentum[f"momentum/{name}"] = (np.zeros(tuple(param.shape), np.float32)
                                            if buffer is None else buffer.cpu().numpy())
        return export_state(self.model), momentum

    def restore(self, state: State, optimizer: dict[str, np.ndarray]) -> None:
        load_state(self.model, state, "checkpoint")
        for name, param in zip(self.names, self.model.parameters(), strict=True):
            buffer = torch.from_numpy(optimizer[f"momentum/{name}"]).to(self.device)
            self.optimizer.state[param]["momentum_buffer"] = buffer

    def gather(self, value) -> list:
        """Every process's `value`, in rank order (on every process)."""
        if self.world == 1:
            return [value]
        values = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self.world > 1:
            # Every rank reaches here before any tears down: a gloo process group destroyed
            # while a peer is still writing its files aborted that peer at exit (SIGABRT,
            # "terminate called without an active exception"; seen once in CI).
            # Bounded, so that a rank that failed alone does not hang the others here.
            try:
                if dist.get_backend() == "gloo":
                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=120))
                else:
                    dist.barrier()
            except RuntimeError:
                pass
            dist.destroy_process_group()

    def memory_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return None
