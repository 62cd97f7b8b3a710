"""Networks of the scalping agent: a multi-stream state encoder and a risk-aware branching dueling Q-network.

Shapes (B = batch, T = micro window length):
  micro [B, T, F_micro]  per-second sequence (book, trades) -> LSTM, last output
  macro [B, F_macro]     per-minute / per-hour aggregates   -> MLP
  state [B, F_state]     flat vector: snapshot features, inventory, margin, PnL -> MLP
The three embeddings are concatenated and fused into one latent [B, latent]. Inputs are standardized per feature
first ((x - mean) / std, clipped): identity until `set_input_scaling` fits it (training does, on train observations).

RiskAwareBranchingDQN puts dueling branching heads on that latent (Tavakoli et al. 2018, "Action Branching
Architectures for Deep Reinforcement Learning"): one state value V(s) shared by all branches and one advantage head
per action dimension (price offset, size bucket),
    Q_d(s, a_d) = V(s) + A_d(s, a_d) - mean_a A_d(s, a),
so that mean_a Q_d(s, a) = V(s) for every branch. With `n_quantiles > 0` every head outputs N quantiles instead of one
number (QR-DQN, Dabney et al. 2018) and the same aggregation is applied quantile by quantile; the expected Q is the
mean over quantiles. A risk head predicts the conditional variance of the next-step return (softplus, trained with a
Gaussian NLL on realized squared returns, see agent/losses.py); the env turns it into a leverage cap.

Forward passes use no data-dependent Python control flow: torch.jit.trace, torch.jit.script and ONNX export (dynamo)
all reproduce the eager outputs (tests/test_nets.py checks each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of the three input streams and of the layers that embed them.

    A stream with 0 features is left out of the network (its input tensor is still accepted and ignored).
    """

    micro_features: int
    macro_features: int
    state_features: int
    lstm_hidden: int = 64
    lstm_layers: int = 1
    macro_hidden: int = 64
    state_hidden: int = 64
    latent: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.micro_features <= 0:
            raise ValueError(
                f"micro_features={self.micro_features}: the micro window is the encoder's main input and needs at "
                "least one feature per step; pass the width of the per-second observation"
            )
        for name in ("macro_features", "state_features"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} is negative; pass 0 to leave that stream out")
        for name in ("lstm_hidden", "lstm_layers", "macro_hidden", "state_hidden", "latent"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive layer size")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must lie in [0, 1)")


@dataclass(frozen=True)
class BranchingDQNConfig:
    """Head sizes of RiskAwareBranchingDQN on top of an EncoderConfig.

    n_quantiles: 0 for expected-value heads (plain BDQ); N > 0 for a QR-DQN distributional critic with N quantiles
    per action per branch.
    variance_scale: the risk head outputs softplus(raw) * variance_scale + min_variance, so set it to the train-fit
    variance of the return the head predicts (e.g. the squared one-second return scale); with the default 1.0 the
    head has to reach tiny raw values by itself, which is slow.
    rescale_shared_gradient: scale the gradient entering the shared trunk by 1 / (branches + 1) = 1/3, as BDQ does
    because the trunk receives the sum of the value head's and every advantage head's gradients (the risk head
    reads the encoder latent directly and is not rescaled).
    return_head: add an auxiliary head that predicts the next-step return (in units of its train-fit standard
    deviation) from the encoder latent; training fits it by least squares (`forward_with_return`). The decision
    outputs do not use it: it only shapes the latent, where TD targets alone carry a small edge in much noise.
    """

    encoder: EncoderConfig
    n_price: int
    n_size: int
    trunk_hidden: int = 128
    head_hidden: int = 64
    risk_hidden: int = 64
    n_quantiles: int = 0
    variance_scale: float = 1.0
    min_variance: float = 1e-12
    rescale_shared_gradient: bool = True
    return_head: bool = False

    def __post_init__(self) -> None:
        for name in ("n_price", "n_size"):
            if getattr(self, name) < 2:
                raise ValueError(
                    f"{name}={getattr(self, name)}: a branch needs at least 2 actions to choose from"
                )
        for name in ("trunk_hidden", "head_hidden", "risk_hidden"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive layer size")
        if self.n_quantiles < 0:
            raise ValueError(
                f"n_quantiles={self.n_quantiles}: use 0 for expected-value heads or N > 0 quantiles"
            )
        if not self.variance_scale > 0:
            raise ValueError(
                f"variance_scale={self.variance_scale} must be > 0 (the target return variance scale)"
            )
        if not self.min_variance >= 0:
            raise ValueError(f"min_variance={self.min_variance} must be >= 0")

    @property
    def distributional(self) -> bool:
        return self.n_quantiles > 0

    @property
    def quantiles_per_head(self) -> int:
        """N of the quantile axis of the outputs: n_quantiles, or 1 (a point mass at Q) for expected-value heads."""
        return max(self.n_quantiles, 1)


class BranchingQ(NamedTuple):
    """Outputs of RiskAwareBranchingDQN.forward (a plain tuple in that order after tracing / ONNX export)."""

    q_price: Tensor  # [B, n_price] expected action values of the price-offset branch
    q_size: Tensor  # [B, n_size] expected action values of the size branch
    variance: Tensor  # [B] predicted conditional variance of the next-step return (> 0)
    price_quantiles: Tensor  # [B, n_price, N] return quantiles (N = 1: the expected value itself)
    size_quantiles: Tensor  # [B, n_size, N]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the one asked for, else CUDA when present, else CPU."""
    if device is not None:
        resolved = torch.device(device)
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device={device!r} asked for CUDA but torch sees no GPU; pass device='cpu' or None"
            )
        return resolved
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def mlp(in_features: int, hidden: int, out_features: int, dropout: float = 0.0) -> nn.Sequential:
    """Two-layer perceptron: Linear -> ReLU -> (Dropout) -> Linear."""
    layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, out_features))
    return nn.Sequential(*layers)


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity in the forward pass (up to one rounding), gradient multiplied by `scale` in the backward pass."""
    return x * scale + x.detach() * (1.0 - scale)


def dueling_branch_q(value: Tensor, advantages: Tensor) -> Tensor:
    """Dueling aggregation of one branch: Q = V + A - mean_a A.

    value: [B, N] (N quantiles, or 1); advantages: [B, n_actions, N]. Returns [B, n_actions, N].
    """
    return value.unsqueeze(1) + advantages - advantages.mean(dim=1, keepdim=True)


INPUT_CLIP = 10.0  # standardized inputs are clipped to +-this many standard deviations
INPUT_SCALING_BUFFERS = (
    "micro_shift", "micro_scale", "macro_shift", "macro_scale", "state_shift", "state_scale", "input_clip",
)  # fmt: skip


class MultiStreamStateEncoder(nn.Module):
    """LSTM over the micro window + MLPs over macro and state features, fused into one latent vector.

    forward(micro [B, T, F_micro], macro [B, F_macro], state [B, F_state]) -> latent [B, latent].
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.micro_lstm = nn.LSTM(
            input_size=config.micro_features,
            hidden_size=config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        fused_width = config.lstm_hidden
        # A stream with no features gets no module; forward checks the attribute, a constant while tracing.
        self.macro_mlp: nn.Module | None = None
        if config.macro_features > 0:
            self.macro_mlp = nn.Sequential(
                mlp(config.macro_features, config.macro_hidden, config.macro_hidden, config.dropout),
                nn.ReLU(),
            )
            fused_width += config.macro_hidden
        self.state_mlp: nn.Module | None = None
        if config.state_features > 0:
            self.state_mlp = nn.Sequential(
                mlp(config.state_features, config.state_hidden, config.state_hidden, config.dropout),
                nn.ReLU(),
            )
            fused_width += config.state_hidden
        # LayerNorm keeps the fused scale stable while the three streams learn at different speeds.
        self.fuse = nn.Sequential(
            nn.Linear(fused_width, config.latent), nn.LayerNorm(config.latent), nn.ReLU()
        )
        # Per-feature input standardization, (x - shift) / scale clipped to +-INPUT_CLIP: identity until
        # set_input_scaling() fits it (training does, on its first observations). The raw features span very
        # different scales (book offsets of tens of ticks next to imbalances in [-1, 1]); buffers, so they travel
        # with the state dict, checkpoints and exports.
        for name, width in (
            ("micro", config.micro_features),
            ("macro", config.macro_features),
            ("state", config.state_features),
        ):
            self.register_buffer(f"{name}_shift", torch.zeros(width))
            self.register_buffer(f"{name}_scale", torch.ones(width))
        self.register_buffer("input_clip", torch.tensor(float("inf")))  # INPUT_CLIP once fitted

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # networks saved before the input standardization existed load with it left at the identity
        for name in INPUT_SCALING_BUFFERS:
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.jit.unused
    def check_inputs(self, micro: Tensor, macro: Tensor, state: Tensor) -> None:
        """Raise a ValueError naming the tensor whose shape does not match the config."""
        cfg = self.config
        expected = {
            "micro": (micro, 3, cfg.micro_features, "[batch, window, micro_features]"),
            "macro": (macro, 2, cfg.macro_features, "[batch, macro_features]"),
            "state": (state, 2, cfg.state_features, "[batch, state_features]"),
        }
        for name, (tensor, ndim, width, layout) in expected.items():
            if tensor.dim() != ndim or tensor.shape[-1] != width:
                raise ValueError(
                    f"{name} has shape {tuple(tensor.shape)}, expected {layout} with {name}_features={width} as "
                    "in EncoderConfig; build the observation with the same feature lists the net was made for"
                )
        if micro.shape[1] == 0:
            raise ValueError("micro has an empty time axis; the micro window needs at least one step")
        if not (micro.shape[0] == macro.shape[0] == state.shape[0]):
            raise ValueError(
                f"batch sizes differ: micro {micro.shape[0]}, macro {macro.shape[0]}, state {state.shape[0]}"
            )

    @torch.no_grad()
    def set_input_scaling(self, micro: Tensor, macro: Tensor, state: Tensor, min_scale: float = 1e-3) -> None:
        """Fit the input standardization to a batch of observations (micro [B, T, F] pooled over B and T): shift =
        mean, scale = standard deviation, or 1 where a feature is constant (below `min_scale`)."""
        self.check_inputs(micro, macro, state)
        for name, x in (("micro", micro.reshape(-1, micro.shape[-1])), ("macro", macro), ("state", state)):
            x = x.to(self.micro_shift.device, torch.float32)
            std = x.std(dim=0, unbiased=False)
            getattr(self, f"{name}_shift").copy_(x.mean(dim=0))
            getattr(self, f"{name}_scale").copy_(torch.where(std > min_scale, std, torch.ones_like(std)))
        self.input_clip.fill_(INPUT_CLIP)

    def blind_inputs(self, micro: list[int], macro: list[int], state: list[int]) -> None:
        """Make the network blind to these input columns: shift 0 and an infinite scale standardize them to exactly
        0 whatever their value. set_input_scaling overwrites them: re-apply after fitting."""
        for name, columns in (("micro", micro), ("macro", macro), ("state", state)):
            if columns:
                getattr(self, f"{name}_shift")[columns] = 0.0
                getattr(self, f"{name}_scale")[columns] = math.inf

    def forward(self, micro: Tensor, macro: Tensor, state: Tensor) -> Tensor:
        # Shape checks in Python only: traced and scripted graphs must not carry data-dependent branches.
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            self.check_inputs(micro, macro, state)
        clip = self.input_clip
        micro = torch.minimum(torch.maximum((micro - self.micro_shift) / self.micro_scale, -clip), clip)
        macro = torch.minimum(torch.maximum((macro - self.macro_shift) / self.macro_scale, -clip), clip)
        state = torch.minimum(torch.maximum((state - self.state_shift) / self.state_scale, -clip), clip)
        sequence_out, _ = self.micro_lstm(micro)
        parts = [sequence_out[:, -1]]
        if self.macro_mlp is not None:
            parts.append(self.macro_mlp(macro))
        if self.state_mlp is not None:
            parts.append(self.state_mlp(state))
        return self.fuse(torch.cat(parts, dim=-1))


class RiskAwareBranchingDQN(nn.Module):
    """Shared encoder + trunk -> dueling branching Q heads (price offset, size) and a variance (risk) head.

    forward(micro, macro, state) -> BranchingQ (shapes in its definition). `device` None picks CUDA when present.
    """

    def __init__(self, config: BranchingDQNConfig, device: str | torch.device | None = None) -> None:
        super().__init__()
        self.config = config
        # Plain ints for forward: TorchScript cannot read the config dataclass.
        self.n_price = config.n_price
        self.n_size = config.n_size
        self.n_per_head = config.quantiles_per_head
        # BDQ rescales the gradient entering the shared trunk by 1 / (branches + 1): it sums the gradients of the
        # value head and of every advantage head.
        self.shared_gradient_scale = 1.0 / 3.0 if config.rescale_shared_gradient else 1.0
        n_per_head = self.n_per_head
        self.encoder = MultiStreamStateEncoder(config.encoder)
        latent = config.encoder.latent
        self.trunk = nn.Sequential(nn.Linear(latent, config.trunk_hidden), nn.ReLU())
        self.value_head = mlp(config.trunk_hidden, config.head_hidden, n_per_head)
        self.price_advantage = mlp(config.trunk_hidden, config.head_hidden, config.n_price * n_per_head)
        self.size_advantage = mlp(config.trunk_hidden, config.head_hidden, config.n_size * n_per_head)
        # The risk head reads the encoder latent, not the Q trunk: variance is a property of the market state.
        self.risk_head = mlp(latent, config.risk_hidden, 1)
        self.return_head = mlp(latent, config.risk_hidden, 1) if config.return_head else None
        self.register_buffer("variance_scale", torch.tensor(float(config.variance_scale)))
        self.register_buffer("min_variance", torch.tensor(float(config.min_variance)))
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.variance_scale.device

    def forward(self, micro: Tensor, macro: Tensor, state: Tensor) -> BranchingQ:
        return self.heads(self.encoder(micro, macro, state))

    def forward_with_return(self, micro: Tensor, macro: Tensor, state: Tensor) -> tuple[BranchingQ, Tensor]:
        """The outputs and the auxiliary next-step return prediction [B] (needs config.return_head)."""
        if self.return_head is None:
            raise ValueError(
                "this network has no return head; build it with BranchingDQNConfig(return_head=True)"
            )
        latent = self.encoder(micro, macro, state)
        return self.heads(latent), self.return_head(latent).squeeze(-1)

    def heads(self, latent: Tensor) -> BranchingQ:
        """Q branches, quantiles and variance from the encoder latent [B, latent]."""
        hidden = scale_gradient(self.trunk(latent), self.shared_gradient_scale)
        value = self.value_head(hidden)  # [B, N]
        price_adv = self.price_advantage(hidden).view(-1, self.n_price, self.n_per_head)
        size_adv = self.size_advantage(hidden).view(-1, self.n_size, self.n_per_head)
        price_quantiles = dueling_branch_q(value, price_adv)
        size_quantiles = dueling_branch_q(value, size_adv)
        # In the buffers' dtype (float32) even under autocast: one-second return variances (~1e-8) underflow float16.
        raw_risk = self.risk_head(latent).squeeze(-1).to(self.variance_scale.dtype)
        variance = F.softplus(raw_risk) * self.variance_scale + self.min_variance
        return BranchingQ(
            q_price=price_quantiles.mean(dim=-1),
            q_size=size_quantiles.mean(dim=-1),
            variance=variance,
            price_quantiles=price_quantiles,
            size_quantiles=size_quantiles,
        )

    @torch.no_grad()
    def greedy_actions(self, micro: Tensor, macro: Tensor, state: Tensor) -> Tensor:
        """Argmax action per branch: [B, 2] int64, columns (price offset index, size bucket index)."""
        out = self(micro, macro, state)
        return torch.stack([out.q_price.argmax(dim=-1), out.q_size.argmax(dim=-1)], dim=-1)
