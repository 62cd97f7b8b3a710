"""Tests of agent/nets.py: dueling branching aggregation, shapes, input errors, risk head learning, tracing,
scripting and ONNX export."""

from __future__ import annotations

import dataclasses
import io
import warnings

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from agent.losses import gaussian_variance_nll
from agent.nets import (
    INPUT_CLIP,
    INPUT_SCALING_BUFFERS,
    BranchingDQNConfig,
    EncoderConfig,
    MultiStreamStateEncoder,
    RiskAwareBranchingDQN,
    dueling_branch_q,
    resolve_device,
)

torch.set_num_threads(1)


def small_config(n_quantiles: int = 0, macro_features: int = 5, **encoder_kwargs) -> BranchingDQNConfig:
    encoder = EncoderConfig(
        micro_features=6,
        macro_features=macro_features,
        state_features=7,
        lstm_hidden=16,
        macro_hidden=12,
        state_hidden=12,
        latent=24,
        **encoder_kwargs,
    )
    return BranchingDQNConfig(
        encoder=encoder,
        n_price=5,
        n_size=3,
        trunk_hidden=32,
        head_hidden=16,
        risk_hidden=16,
        n_quantiles=n_quantiles,
    )


def random_inputs(config: BranchingDQNConfig, batch: int, window: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    enc = config.encoder
    return (
        torch.randn(batch, window, enc.micro_features, generator=generator),
        torch.randn(batch, enc.macro_features, generator=generator),
        torch.randn(batch, enc.state_features, generator=generator),
    )


def test_dueling_aggregation_matches_hand_computation():
    value = torch.tensor([[1.0, 10.0]])  # B=1, N=2 quantiles
    advantages = torch.tensor([[[1.0, 0.0], [2.0, 3.0], [6.0, 6.0]]])  # [1, 3 actions, 2]
    # per quantile: mean_a A = (3, 3); Q = V + A - 3
    expected = torch.tensor([[[-1.0, 7.0], [0.0, 10.0], [4.0, 13.0]]])
    torch.testing.assert_close(dueling_branch_q(value, advantages), expected)


@pytest.mark.parametrize("n_quantiles", [0, 8])
def test_branches_share_one_state_value(n_quantiles):
    torch.manual_seed(1)
    config = small_config(n_quantiles)
    net = RiskAwareBranchingDQN(config, device="cpu")
    micro, macro, state = random_inputs(config, batch=6, window=9)
    out = net(micro, macro, state)
    n = config.quantiles_per_head
    assert out.q_price.shape == (6, 5) and out.q_size.shape == (6, 3) and out.variance.shape == (6,)
    assert out.price_quantiles.shape == (6, 5, n) and out.size_quantiles.shape == (6, 3, n)
    # The value head's output, computed independently of the aggregation code.
    value = net.value_head(net.trunk(net.encoder(micro, macro, state)))  # [B, N]
    # mean over actions of every branch's Q (per quantile) is V(s): the dueling identifiability constraint.
    torch.testing.assert_close(out.price_quantiles.mean(dim=1), value)
    torch.testing.assert_close(out.size_quantiles.mean(dim=1), value)
    torch.testing.assert_close(out.q_price, out.price_quantiles.mean(dim=-1))
    # Q differences between actions of a branch are advantage differences: V cancels.
    price_adv = net.price_advantage(net.trunk(net.encoder(micro, macro, state))).view(6, 5, n)
    torch.testing.assert_close(
        out.price_quantiles[:, 1:] - out.price_quantiles[:, :1], price_adv[:, 1:] - price_adv[:, :1]
    )
    assert (out.variance > 0).all()


def test_shared_trunk_gradient_is_rescaled_by_one_over_branches_plus_one():
    config = small_config()
    unscaled_config = dataclasses.replace(config, rescale_shared_gradient=False)
    torch.manual_seed(10)
    net = RiskAwareBranchingDQN(config, device="cpu")
    unscaled = RiskAwareBranchingDQN(unscaled_config, device="cpu")
    unscaled.load_state_dict(net.state_dict())
    inputs = random_inputs(config, batch=6, window=5)
    grads = []
    for model in (net, unscaled):
        out = model(*inputs)
        torch.testing.assert_close(out.q_price, unscaled(*inputs).q_price)  # the forward pass is unchanged
        (out.q_price.sum() + out.q_size.pow(2).sum()).backward()
        grads.append((model.trunk[0].weight.grad.clone(), model.value_head[0].weight.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0] / 3)  # trunk: 1 / (2 branches + 1)
    torch.testing.assert_close(grads[0][1], grads[1][1])  # heads themselves: untouched


def test_greedy_actions_are_argmax_per_branch():
    torch.manual_seed(2)
    config = small_config()
    net = RiskAwareBranchingDQN(config, device="cpu")
    inputs = random_inputs(config, batch=10, window=4)
    actions = net.greedy_actions(*inputs)
    out = net(*inputs)
    assert actions.shape == (10, 2) and actions.dtype == torch.int64
    torch.testing.assert_close(actions[:, 0], out.q_price.argmax(-1))
    torch.testing.assert_close(actions[:, 1], out.q_size.argmax(-1))


def test_stream_without_features_is_left_out():
    config = small_config(macro_features=0)
    net = RiskAwareBranchingDQN(config, device="cpu")
    assert net.encoder.macro_mlp is None
    micro, _, state = random_inputs(config, batch=3, window=5)
    out = net(micro, torch.zeros(3, 0), state)
    assert out.q_price.shape == (3, 5)


def test_shape_errors_name_the_input():
    config = small_config()
    encoder = MultiStreamStateEncoder(config.encoder)
    micro, macro, state = random_inputs(config, batch=3, window=5)
    with pytest.raises(ValueError, match="micro has shape"):
        encoder(micro[:, :, :4], macro, state)
    with pytest.raises(ValueError, match="state has shape"):
        encoder(micro, macro, state[0])
    with pytest.raises(ValueError, match="batch sizes differ"):
        encoder(micro, macro[:2], state)
    with pytest.raises(ValueError, match="n_price"):
        BranchingDQNConfig(encoder=config.encoder, n_price=1, n_size=3)
    with pytest.raises(ValueError, match="micro_features"):
        EncoderConfig(micro_features=0, macro_features=1, state_features=1)


def test_variance_stays_float32_under_autocast():
    config = dataclasses.replace(small_config(), variance_scale=1e-8)
    net = RiskAwareBranchingDQN(config, device="cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(*random_inputs(config, batch=4, window=6))
    assert out.q_price.dtype == torch.bfloat16  # autocast is active for the Q heads
    assert out.variance.dtype == torch.float32 and (out.variance > 0).all()


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    net = RiskAwareBranchingDQN(small_config(), device=None)
    assert next(net.parameters()).device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no GPU"):
            resolve_device("cuda")


@pytest.mark.parametrize("n_quantiles", [0, 4])
def test_trace_matches_eager_on_other_batch_and_window(n_quantiles):
    torch.manual_seed(3)
    config = small_config(n_quantiles)
    net = RiskAwareBranchingDQN(config, device="cpu").eval()
    with warnings.catch_warnings():
        # torch's own LSTM input checks and the deprecation notice of torch.jit.trace; neither changes the graph.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, random_inputs(config, batch=4, window=10))
    inputs = random_inputs(config, batch=7, window=16, seed=5)
    eager = net(*inputs)
    traced_out = traced(*inputs)
    assert len(traced_out) == len(eager)
    for got, want in zip(traced_out, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("n_quantiles", "macro_features"), [(0, 5), (4, 0)])
def test_script_save_load_matches_eager(n_quantiles, macro_features):
    torch.manual_seed(7)
    config = small_config(n_quantiles, macro_features=macro_features)
    net = RiskAwareBranchingDQN(config, device="cpu").eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notice of torch.jit
        torch.jit.save(torch.jit.script(net), buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
    inputs = random_inputs(config, batch=5, window=11, seed=8)
    eager, scripted = net(*inputs), loaded(*inputs)
    assert scripted._fields == eager._fields  # the named outputs survive scripting
    for got, want in zip(scripted, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_risk_head_learns_heteroscedastic_variance():
    """Returns whose variance depends on one state feature: the predicted variance must track the true one."""
    torch.manual_seed(4)
    rng = np.random.default_rng(4)
    encoder = EncoderConfig(
        micro_features=2, macro_features=0, state_features=2, lstm_hidden=8, state_hidden=16, latent=16
    )
    # Returns in one-second units (~1e-3): variance_scale tells the head the scale, as train.py will.
    scale = 1e-6
    net = RiskAwareBranchingDQN(
        BranchingDQNConfig(encoder=encoder, n_price=2, n_size=2, risk_hidden=32, variance_scale=scale),
        device="cpu",
    )

    def draw(n: int):
        x = rng.uniform(-1.0, 1.0, size=n)
        true_var = scale * (0.05 + 2.0 * x**2)
        ret = rng.normal(0.0, np.sqrt(true_var))
        state = np.stack([x, rng.normal(size=n)], axis=1)  # second column is noise
        micro = rng.normal(size=(n, 3, 2))  # noise window: the variance lives in the state stream only
        to = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        return to(micro), torch.zeros(n, 0), to(state), to(ret), true_var

    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        micro, macro, state, ret, _ = draw(512)
        loss = gaussian_variance_nll(net(micro, macro, state).variance, ret)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    micro, macro, state, _, true_var = draw(4000)
    with torch.no_grad():
        predicted = net(micro, macro, state).variance.double().numpy()
    correlation = np.corrcoef(predicted, true_var)[0, 1]
    assert correlation > 0.9, f"predicted/true variance correlation {correlation:.3f}"
    ratio = np.median(predicted / true_var)
    assert 0.6 < ratio < 1.6, f"predicted variance is off scale: median ratio {ratio:.2f}"


def test_return_head_learns_a_drift_buried_in_noise_and_leaves_the_decision_outputs_alone():
    """Next-step returns with a mean of 0.3 sd x one micro feature (R^2 ~ 8 %, like the synthetic market's queue
    imbalance edge): the auxiliary head must recover the slope; forward() must not change with the head present."""
    torch.manual_seed(5)
    rng = np.random.default_rng(5)
    encoder = EncoderConfig(micro_features=2, macro_features=0, state_features=1, lstm_hidden=8, latent=16)
    net = RiskAwareBranchingDQN(
        BranchingDQNConfig(encoder=encoder, n_price=2, n_size=2, return_head=True, variance_scale=1e-8),
        device="cpu",
    )
    to = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731

    def draw(n: int):
        micro = rng.normal(size=(n, 3, 2))
        drift = 0.3 * micro[:, -1, 0]  # the current step's first feature sets the mean; the rest is noise
        ret = 1e-4 * (drift + rng.normal(size=n))  # returns of sd 1e-4 = sqrt(variance_scale)
        return to(micro), torch.zeros(n, 0), to(rng.normal(size=(n, 1))), to(ret), drift

    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(400):
        micro, macro, state, ret, _ = draw(256)
        _, predicted = net.forward_with_return(micro, macro, state)
        loss = F.mse_loss(predicted, ret / net.variance_scale.sqrt())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    micro, macro, state, _, drift = draw(4000)
    with torch.no_grad():
        out, predicted = net.forward_with_return(micro, macro, state)
        plain = net(micro, macro, state)
    slope = np.polyfit(drift, predicted.numpy(), 1)[0]
    assert 0.7 < slope < 1.3, f"return head slope {slope:.2f} against the true drift"
    for a, b in zip(out, plain, strict=True):
        torch.testing.assert_close(a, b)
    no_head = RiskAwareBranchingDQN(BranchingDQNConfig(encoder=encoder, n_price=2, n_size=2), device="cpu")
    with pytest.raises(ValueError, match="return head"):
        no_head.forward_with_return(micro, macro, state)


def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(6)
    config = small_config(n_quantiles=3)
    net = RiskAwareBranchingDQN(config, device="cpu").eval()
    path = tmp_path / "bdq.onnx"
    axes = {"micro": {0: "batch", 1: "window"}, "macro": {0: "batch"}, "state": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the exporter agent/export.py uses (the dynamo one fixes the window axis after a first export)
        torch.onnx.export(
            net,
            random_inputs(config, batch=4, window=10),
            str(path),
            input_names=["micro", "macro", "state"],
            dynamic_axes=axes,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = random_inputs(config, batch=5, window=12, seed=9)
    got = session.run(
        None, {name: t.numpy() for name, t in zip(["micro", "macro", "state"], inputs, strict=True)}
    )
    with torch.no_grad():
        want = net(*inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)


def test_fitted_input_scaling_equals_feeding_standardized_inputs():
    """After set_input_scaling the network sees (x - mean) / std (numpy statistics), clipped to +-INPUT_CLIP; a
    constant feature keeps scale 1; the scaling travels through tracing and the state dict."""
    torch.manual_seed(11)
    config = small_config()
    scaled = RiskAwareBranchingDQN(config, device="cpu").eval()
    plain = RiskAwareBranchingDQN(config, device="cpu").eval()
    plain.load_state_dict(scaled.state_dict())  # same weights, identity scaling
    micro, macro, state = random_inputs(config, batch=64, window=9, seed=12)
    micro, macro, state = micro * 40.0 + 7.0, macro * 0.01 - 3.0, state * 5.0
    state[:, 2] = 4.0  # a constant feature
    scaled.encoder.set_input_scaling(micro, macro, state)

    def standardize(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        mean, std = x.mean(axis=axes), x.std(axis=axes)
        std = np.where(std > 1e-3, std, 1.0)
        return np.clip((x - mean) / std, -INPUT_CLIP, INPUT_CLIP)

    reference = [
        torch.as_tensor(standardize(x.numpy().astype(np.float64), axes), dtype=torch.float32)
        for x, axes in ((micro, (0, 1)), (macro, (0,)), (state, (0,)))
    ]
    assert float(scaled.encoder.state_scale[2]) == 1.0
    for got, want in zip(scaled(micro, macro, state), plain(*reference), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(scaled, (micro[:4], macro[:4], state[:4]))
    torch.testing.assert_close(traced(micro, macro, state)[0], scaled(micro, macro, state)[0])
    reloaded = RiskAwareBranchingDQN(config, device="cpu").eval()
    reloaded.load_state_dict(scaled.state_dict())
    torch.testing.assert_close(reloaded(micro, macro, state)[1], scaled(micro, macro, state)[1])


def test_state_dict_without_input_scaling_loads_as_identity():
    """A network saved before the input standardization existed still loads (scaling left at the identity)."""
    torch.manual_seed(13)
    config = small_config()
    net = RiskAwareBranchingDQN(config, device="cpu").eval()
    old = {k: v for k, v in net.state_dict().items() if k.split(".")[-1] not in INPUT_SCALING_BUFFERS}
    fresh = RiskAwareBranchingDQN(config, device="cpu").eval()
    fresh.load_state_dict(old)
    inputs = random_inputs(config, batch=3, window=5, seed=14)
    inputs = (inputs[0] * 100.0, inputs[1], inputs[2])  # large inputs pass unclipped while unfitted
    torch.testing.assert_close(fresh(*inputs)[0], net(*inputs)[0])


def test_blinded_inputs_change_nothing_the_network_outputs():
    encoder = EncoderConfig(micro_features=3, macro_features=2, state_features=4, lstm_hidden=8, latent=16)
    net = RiskAwareBranchingDQN(BranchingDQNConfig(encoder=encoder, n_price=2, n_size=3), device="cpu")
    rng = np.random.default_rng(7)
    to = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    micro, macro, state = (
        to(rng.normal(size=(5, 4, 3))),
        to(rng.normal(size=(5, 2))),
        to(rng.normal(size=(5, 4))),
    )
    net.encoder.set_input_scaling(micro, macro, state)
    net.encoder.blind_inputs(micro=[1], macro=[0], state=[2, 3])
    changed = (micro.clone(), macro.clone(), state.clone())
    changed[0][:, :, 1] += 1e5
    changed[1][:, 0] = -3.0
    changed[2][:, 2:] *= -50.0
    with torch.no_grad():
        for a, b in zip(net(micro, macro, state), net(*changed), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        seen = (micro.clone(), macro.clone(), state.clone())
        seen[2][:, 0] += 1.0  # a column that is not blinded still matters
        assert not torch.equal(net(micro, macro, state).q_price, net(*seen).q_price)
