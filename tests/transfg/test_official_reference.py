"""Our PyTorch and Jittor TransFG against the authors' own code (tests/official_code.py imports it):
one Google checkpoint gives the same parameters under every name in both loaders; then the same
logits, Part Selection picks, losses (cross-entropy or the official LabelSmoothing, plus the
contrastive loss), gradients and one SGD update (momentum 0.9, the official WarmupCosineSchedule,
clipping 1.0); and the same learning rate at every step of both official schedules.

The default run builds the official model classes with a small config (64 px, width 48, 4 layers);
the paper's size (ViT-B_16, 448 px, 200 classes, overlap stride 12 and non-overlap) runs with
`-m slow` (minutes on 2 CPU cores), apart from the parameter check, which is cheap. Dropout is off
in every model compared (the frameworks draw different masks); the official code's own
initialisation draws part_layer and part_head, and ours takes that draw.
"""

import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np
import official_code
import pytest
import torch
from google_npz import google_checkpoint

import transfg.jittor  # noqa: F401  (prepares jittor before it is imported)

import jittor as jt  # isort: skip
from transfg.config import ModelConfig, tiny, vit_b16
from transfg.data.bundled import ROOT as DIGITS
from transfg.jittor import losses as jl
from transfg.jittor.engine import Engine as JittorEngine
from transfg.schedule import multiplier
from transfg.spec import RunSpec, Seeds, TrainConfig
from transfg.torch import losses as tl
from transfg.torch.engine import Engine as TorchEngine
from transfg.weights import from_google

# One official update: the first of a short warmup-cosine schedule (lr = 0.03 / 5), clipped at
# the official 1.0 (the small model's gradient is smaller: it clips at 0.25, so clipping acts).
UPDATE = TrainConfig(steps=100, warmup_steps=5, learning_rate=0.03, batch_size=4,
                     max_grad_norm=1.0, momentum=0.9, weight_decay=0.0)
SMALL = tiny(hidden_size=48, mlp_dim=96, num_heads=4, num_layers=4, num_classes=10)
PART_NAMES = ("transformer.encoder.part_layer.", "part_head.")


@pytest.fixture(scope="module")
def modeling():
    return official_code.load("models.modeling")


def official_config(modeling, config: ModelConfig):
    """The official ViT-B_16 config (its own ml_collections object), resized to `config`."""
    c = modeling.configs.get_b16_config()
    c.split, c.slide_step = config.split, config.slide_step
    c.patches["size"] = (config.patch_size, config.patch_size)
    c.hidden_size = config.hidden_size
    c.transformer["mlp_dim"] = config.mlp_dim
    c.transformer["num_heads"] = config.num_heads
    c.transformer["num_layers"] = config.num_layers
    c.transformer["dropout_rate"] = config.dropout_rate
    c.transformer["attention_dropout_rate"] = config.attention_dropout_rate
    return c


def official_model(modeling, config: ModelConfig, seed: int = 0):
    torch.manual_seed(seed)  # the official init of part_layer and part_head
    return modeling.VisionTransformer(official_config(modeling, config), config.image_size,
                                      zero_head=True, num_classes=config.num_classes,
                                      smoothing_value=config.smoothing)


def checkpoint(config: ModelConfig, rng) -> dict[str, np.ndarray]:
    """A random Google ViT checkpoint (14 x 14 position grid) whose attention is peaked enough
    that the Part Selection Module's argmax has clear winners (query and key kernels x 8, CLS and
    position embeddings of spread 0.5)."""
    npz = google_checkpoint(rng, config.hidden_size, config.mlp_dim, config.num_heads,
                            config.num_layers, config.patch_size, grid=14, classes=7)
    for name in npz:
        if name.endswith(("query/kernel", "key/kernel")):
            npz[name] = npz[name] * 8
        elif name in ("cls", "Transformer/posembed_input/pos_embedding"):
            npz[name] = rng.normal(0, 0.5, npz[name].shape).astype(np.float32)
    return npz


def loaded_states(modeling, config, npz, rng):
    """(the official model after its load_from, our from_google state with the official draw of
    part_layer and part_head)."""
    official = official_model(modeling, config)
    official.load_from(npz)
    theirs = {name: value.detach().numpy().copy() for name, value in official.state_dict().items()}
    ours = from_google(npz, config, rng)
    ours |= {name: theirs[name] for name in theirs if name.startswith(PART_NAMES)}
    return official, theirs, ours


def rel_err(a, b) -> float:
    """Largest absolute difference relative to the largest magnitude of the reference `b`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


# --- the parameters: Google's checkpoint through both loaders ---

@pytest.mark.parametrize("split", ["overlap", "non-overlap"])
def test_official_load_from_and_our_from_google_give_the_same_parameters(modeling, split):
    """At the paper's size: every name, every value. The position embeddings are resized from
    14 x 14 to 37 x 37 (28 x 28) by scipy's zoom there and our bilinear resampling here: equal to
    float32 rounding. part_layer and part_head are random in both; nothing else is."""
    config = vit_b16(split=split, num_classes=200)
    npz = checkpoint(config, np.random.default_rng(1))
    official = official_model(modeling, config)
    official.load_from(npz)
    theirs = {name: value.detach().numpy() for name, value in official.state_dict().items()}
    ours = from_google(npz, config, np.random.default_rng(2))
    assert sorted(theirs) == sorted(ours)
    posemb = "transformer.embeddings.position_embeddings"
    assert theirs[posemb].shape == (1, config.num_tokens, 768)
    np.testing.assert_allclose(ours[posemb], theirs[posemb], rtol=0, atol=2e-7)
    loaded = [n for n in theirs if n != posemb and not n.startswith(PART_NAMES)]
    assert len(loaded) == len(theirs) - 1 - 16 - 2  # all but posemb, part_layer's, part_head's
    for name in loaded:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    for name in theirs:
        if name.startswith(PART_NAMES) and "_norm." not in name:  # (norms start at 1 and 0)
            assert not np.array_equal(ours[name], theirs[name]), name  # independent draws


# --- one forward, backward and update ---

@dataclass
class Outcome:
    logits: np.ndarray
    parts: np.ndarray
    loss: float
    grad_norm: float
    # After the first update: SGD's momentum buffer (the clipped gradient: it starts at zero) and
    # the parameters (before - lr x buffer; a float32 parameter rounds away most of that change,
    # so the buffers carry the comparison of the update itself).
    buffers: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    grads: dict[str, np.ndarray] = field(default_factory=dict)  # before clipping
    gap: np.ndarray | None = None  # official only: the rollout's top-two margin per pick
    lr: float = 0.0


def rollout_gap(maps: list[torch.Tensor]) -> np.ndarray:
    """(B, H): how far the rollout's best patch leads the second, relative to the best, from the
    official maps multiplied in float64."""
    product = maps[0].double()
    for weights in maps[1:]:
        product = weights.double() @ product
    row = torch.sort(product[:, :, 0, 1:], dim=-1, descending=True).values
    return ((row[..., 0] - row[..., 1]) / row[..., 0]).numpy()


def step_before_optimizer(scheduler) -> None:
    """scheduler.step() before optimizer.step(), as the official train.py (torch warns of it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Detected call of")
        scheduler.step()


def run_official(modeling, official, x, y, train: TrainConfig) -> Outcome:
    """The official model, loss, SGD, WarmupCosineSchedule and clipping, as its train.py uses
    them for one update; the attention maps and picks captured by hooks."""
    scheduler_module = official_code.load("utils.scheduler")
    maps, picks = [], []
    hooks = [layer.register_forward_hook(lambda m, i, out: maps.append(out[1].detach()))
             for layer in official.transformer.encoder.layer]
    hooks.append(official.transformer.encoder.part_select.register_forward_hook(
        lambda m, i, out: picks.append(out[1].detach())))
    official.train()
    optimizer = torch.optim.SGD(official.parameters(), lr=train.learning_rate, momentum=0.9,
                                weight_decay=train.weight_decay)
    scheduler = scheduler_module.WarmupCosineSchedule(optimizer, warmup_steps=train.warmup_steps,
                                                      t_total=train.steps)
    official.zero_grad()
    loss, logits = official(torch.from_numpy(x), torch.from_numpy(y))
    loss.backward()
    for hook in hooks:
        hook.remove()
    grads = {n: p.grad.detach().numpy().copy() for n, p in official.named_parameters()}
    norm = torch.nn.utils.clip_grad_norm_(official.parameters(), train.max_grad_norm)
    step_before_optimizer(scheduler)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    buffers = {n: optimizer.state[p]["momentum_buffer"].numpy()
               for n, p in official.named_parameters()}
    after = {n: p.detach().numpy() for n, p in official.named_parameters()}
    return Outcome(logits.detach().numpy(), picks[0].numpy(), float(loss.detach()), float(norm),
                   buffers, after, grads, rollout_gap(maps), lr)


def spec_for(framework: str, config: ModelConfig, train: TrainConfig) -> RunSpec:
    return RunSpec(framework, config, train, "digits", str(DIGITS), Seeds.from_seed(0))


def our_update(engine, framework, x, y, train: TrainConfig):
    lr = train.learning_rate * multiplier(1, train.warmup_steps, train.steps)
    to = torch.from_numpy if framework == "torch" else jt.array
    totals = engine.train_step([(to(x), to(y), None)], lr)
    after, momentum = engine.export()
    return totals, {name: momentum[f"momentum/{name}"] for name in after}, after, lr


def run_torch(config, state, x, y, train, grads: bool) -> Outcome:
    engine = TorchEngine(spec_for("torch", config, train), state)
    found = {}
    if grads:  # raw gradients from the model itself, before the engine's update
        engine.model.zero_grad()
        logits, out = engine.model(torch.from_numpy(x))
        tl.transfg_loss(logits, out["cls_feature"], torch.from_numpy(y), config)["loss"].backward()
        found = {n: p.grad.numpy().copy() for n, p in engine.model.named_parameters()}
        engine.model.zero_grad()
    with torch.no_grad():
        logits, out = engine.model(torch.from_numpy(x))
    totals, buffers, after, lr = our_update(engine, "torch", x, y, train)
    return Outcome(logits.numpy(), out["part_inx"].numpy(), totals["loss"], totals["grad_norm"],
                   buffers, after, found, lr=lr)


def run_jittor(config, state, x, y, train, grads: bool) -> Outcome:
    engine = JittorEngine(spec_for("jittor", config, train), state)
    found = {}
    if grads:
        logits, out = engine.model(jt.array(x))
        loss = jl.transfg_loss(logits, out["cls_feature"], jt.array(y), config)["loss"]
        names, params = zip(*engine.model.named_parameters(), strict=True)
        found = {n: g.numpy() for n, g in zip(names, jt.grad(loss, list(params)), strict=True)}
    with jt.no_grad():
        logits, out = engine.model(jt.array(x))
        logits, parts = logits.numpy(), out["part_inx"].numpy()
    totals, buffers, after, lr = our_update(engine, "jittor", x, y, train)
    return Outcome(logits, parts, totals["loss"], totals["grad_norm"], buffers, after, found,
                   lr=lr)


def assert_same(ours: Outcome, theirs: Outcome, name: str) -> None:
    assert rel_err(ours.logits, theirs.logits) < 1e-4, name
    decisive = theirs.gap > 1e-4  # float32 rounding cannot reorder these
    assert decisive.mean() >= 0.5, f"too few clear picks to compare ({decisive.mean():.0%})"
    np.testing.assert_array_equal(ours.parts[decisive], theirs.parts[decisive], err_msg=name)
    assert ours.loss == pytest.approx(theirs.loss, rel=1e-4), name
    assert ours.grad_norm == pytest.approx(theirs.grad_norm, rel=1e-3), name
    assert ours.lr == pytest.approx(theirs.lr, rel=1e-12), name
    assert_gradients_close(ours.buffers, theirs.buffers, f"{name}: update of")
    for param, expected in theirs.after.items():
        np.testing.assert_allclose(ours.after[param], expected, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}: {param} after the update")
    if ours.grads:
        assert_gradients_close(ours.grads, theirs.grads, f"{name}: gradient of")


def assert_gradients_close(ours: dict, theirs: dict, what: str) -> None:
    """Each parameter's gradient within 1e-3 of its own size, or of a millionth of the largest
    gradient where its own is smaller: some are zero but for rounding (softmax does not see the
    key bias), and rounding noise has no relative error worth the name."""
    assert sorted(ours) == sorted(theirs)
    floor = 1e-6 * max(float(np.abs(g).max()) for g in theirs.values())
    for param, expected in theirs.items():
        scale = max(float(np.abs(expected).max()), floor)
        error = float(np.abs(ours[param].astype(np.float64) - expected).max()) / scale
        assert error < 1e-3, f"{what} {param}: {error:.1e}"


def compare_with_official(modeling, config: ModelConfig, batch: int, labels, grads: bool,
                          max_grad_norm: float = UPDATE.max_grad_norm):
    rng = np.random.default_rng(3)
    npz = checkpoint(config, rng)
    official, _, state = loaded_states(modeling, config, npz, rng)
    x = rng.normal(0, 1, (batch, 3, config.image_size, config.image_size)).astype(np.float32)
    y = np.asarray(labels, dtype=np.int64)
    train = dataclasses.replace(UPDATE, batch_size=batch, max_grad_norm=max_grad_norm)
    theirs = run_official(modeling, official, x, y, train)
    assert theirs.grad_norm > train.max_grad_norm  # the clipping is exercised
    assert_same(run_torch(config, state, x, y, train, grads), theirs, "torch")
    assert_same(run_jittor(config, state, x, y, train, grads), theirs, "jittor")


@pytest.mark.parametrize("split", ["overlap", "non-overlap"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_small_official_model_and_ours_agree_in_forward_backward_and_one_update(
        modeling, split, smoothing):
    config = SMALL.replace(split=split, smoothing=smoothing)
    compare_with_official(modeling, config, batch=4, labels=[1, 3, 1, 5], grads=True,
                          max_grad_norm=0.25)


@pytest.mark.slow
@pytest.mark.parametrize("split", ["overlap", "non-overlap"])
def test_paper_size_official_model_and_ours_agree_in_forward_and_one_update(modeling, split):
    """ViT-B_16 at 448 px, 200 classes. SGD's momentum buffer after the first update is the
    clipped gradient, so comparing every buffer compares every gradient (and the norm that
    clipping divided by)."""
    config = vit_b16(split=split, num_classes=200, dropout_rate=0.0)
    compare_with_official(modeling, config, batch=2, labels=[1, 7], grads=False)


def test_official_losses_are_ours(modeling):
    """The official con_loss and LabelSmoothing on the same features and logits as ours."""
    rng = np.random.default_rng(4)
    features = rng.normal(0, 1, (6, 16)).astype(np.float32)
    logits = rng.normal(0, 2, (6, 5)).astype(np.float32)
    labels = np.array([0, 1, 0, 2, 1, 4])
    f, z, y = map(torch.from_numpy, (features, logits, labels))
    assert float(tl.con_loss(f, y)) == pytest.approx(float(modeling.con_loss(f, y)), rel=1e-6)
    jf, jz, jy = map(jt.array, (features, logits, labels))
    assert float(jl.con_loss(jf, jy).item()) == pytest.approx(float(modeling.con_loss(f, y)),
                                                              rel=1e-5)
    for s in (0.1, 0.3):
        expected = float(modeling.LabelSmoothing(s)(z, y))
        assert float(tl.classification_loss(z, y, s)) == pytest.approx(expected, rel=1e-6)
        assert float(jl.classification_loss(jz, jy, s).item()) == pytest.approx(expected,
                                                                                rel=1e-5)
    expected = float(torch.nn.CrossEntropyLoss()(z, y))  # smoothing 0: the official plain CE
    assert float(tl.classification_loss(z, y, 0.0)) == pytest.approx(expected, rel=1e-6)


# --- the schedules ---

@pytest.mark.parametrize("decay, name", [("cosine", "WarmupCosineSchedule"),
                                         ("linear", "WarmupLinearSchedule")])
def test_official_schedules_give_our_learning_rate_at_every_step(decay, name):
    """10,000 steps with 500 warmup steps, the scheduler stepped before the optimizer as the
    official train.py does: update k uses the rate after the k-th scheduler.step()."""
    schedules = official_code.load("utils.scheduler")
    base = 0.03
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    scheduler = getattr(schedules, name)(optimizer, warmup_steps=500, t_total=10_000)
    theirs, ours = [], []
    for update in range(1, 10_001):
        step_before_optimizer(scheduler)
        theirs.append(optimizer.param_groups[0]["lr"])
        ours.append(base * multiplier(update, 500, 10_000, decay))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert theirs[0] == pytest.approx(base / 500) and theirs[-1] == 0.0
