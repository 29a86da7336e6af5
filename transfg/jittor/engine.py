"""One optimizer update, prediction and checkpoint state in Jittor; mirrors
`transfg/torch/engine.py` method for method."""

from __future__ import annotations

from collections.abc import Sequence

import jittor as jt
import numpy as np

from transfg.spec import RunSpec
from transfg.weights import State

from .data import make_loader
from .losses import transfg_loss
from .model import VisionTransformer
from .weights import export_state, load_state


class Engine:
    framework = "jittor"

    def __init__(self, spec: RunSpec, state: State):
        self.spec = spec
        self.rank, self.world = 0, 1
        if spec.devices != 1:
            raise NotImplementedError(f"devices={spec.devices}: multi-device Jittor runs (mpirun) "
                                      "are not implemented yet; use devices=1 with accumulation")
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
        # it: a seed >= 2**31 comes back negative and kills every loader worker.
        jt.set_global_seed(seed % 2**31)

    def train_step(self, micro_batches: Sequence, lr: float) -> dict[str, float]:
        self.optimizer.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        totals = {"loss": 0.0, "ce": 0.0, "contrastive": 0.0}
        for images, labels, _ in micro_batches:
            logits, out = self.model(images)
            parts = transfg_loss(logits, out["cls_feature"], labels, self.spec.model)
            self.optimizer.backward(parts["loss"] / len(micro_batches))
            for name in totals:
                totals[name] += float(parts[name].item()) / len(micro_batches)
        # Clipped here rather than by optimizer.clip_grad_norm, which computes the same norm but
        # does not return it: the same coefficient, max / (norm + 1e-6), capped at 1.
        grads = [g for group in self.optimizer.param_groups for g in group["grads"]]
        total = jt.norm(jt.concat([g.flatten() for g in grads]))
        coefficient = jt.minimum(self.spec.train.max_grad_norm / (total + 1e-6), 1.0)
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

    def gather(self, value) -> list:
        return [value]

    def close(self) -> None:
        pass

    def memory_mb(self) -> float | None:
        return None
