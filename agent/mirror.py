"""Mirror augmentation: the same transition seen in the market reflected up <-> down.

Reflect every price about a level (bids become asks, buys become sells, up moves become down moves) and a long
position becomes a short one with the same PnL, fees and margin. Where the market's law is symmetric under that
reflection (the synthetic market is: its regimes are bull / bear mirror images and its planted edge is odd in the
queue imbalance), every stored transition (s, a, r, s') has an equally likely twin (m(s), m(a), r, m(s')). Training
on both doubles the data and keeps the agent from reading direction into features that carry none (a Q-network fit
to six hours of one trending path otherwise prefers one side whatever the order book says).

Per observation column the reflection is one of:
  keep  unchanged (spreads, volumes, volatilities, time, PnL and margin in the account, on-chain metrics: on-chain
        activity is not a price direction; it is left as it is, so a model that reads direction from it is not
        corrected by the mirror)
  flip  negated (returns, imbalances, OFI, microprice offset, funding and premium, inventory and leverage)
  swap  exchanged with its opposite column (buy / sell volume, bull / bear regime, our bid / ask order columns)
Book levels: the mirrored bid side is the ask side with negated offsets from mid, and the other way round.
Actions: price offsets are side-free; size bucket s of 0..2K (target inventory (s - K) / K) becomes 2K - s.
Regime strata: bull <-> bear. The realized next-step return the risk head learns from is negated.

A column without a rule (e.g. an external feature-snapshot column) makes `ObservationMirror` refuse by name:
mirroring it wrongly would teach the agent a false symmetry.
"""

from __future__ import annotations

import numpy as np

from agent.market_view import FUNDING_FEATURES, MICRO_FEATURES, REGIMES, macro_feature_names
from agent.obs import state_feature_names

KEEP, FLIP = "keep", "flip"
# column -> KEEP, FLIP or the name of the column it swaps with
MICRO_RULES = {
    "ret_bp": FLIP,
    "spread_ticks": KEEP,
    "imbalance_l1": FLIP,
    "imbalance_l5": FLIP,
    "microprice_ticks": FLIP,
    "buy_volume": "sell_volume",
    "sell_volume": "buy_volume",
    "trade_count": KEEP,
    "ofi": FLIP,
    "realized_vol_bp": KEEP,
}
MACRO_PREFIX_RULES = {"ret_bp_": FLIP, "vol_bp_": KEEP, "volume_": KEEP, "flow_imbalance_": FLIP}
MACRO_RULES = {
    "regime_range": KEEP,
    "regime_bull": "regime_bear",
    "regime_bear": "regime_bull",
    "tod_sin": KEEP,
    "tod_cos": KEEP,
}
STATE_RULES = {
    "last_funding_bp": FLIP,  # longs pay a positive rate; in the mirror the shorts pay it
    "time_to_funding": KEEP,
    "mark_premium_bp": FLIP,
    "inventory": FLIP,
    "leverage_used": FLIP,
    "unrealized_bp": KEEP,
    "episode_pnl_bp": KEEP,
    "drawdown_bp": KEEP,
    "margin_usage": KEEP,
    "leverage_cap": KEEP,
    "entry_edge_bp": KEEP,
    "bid_live": "ask_live",
    "bid_distance_ticks": "ask_distance_ticks",
    "bid_leaves": "ask_leaves",
    "ask_live": "bid_live",
    "ask_distance_ticks": "bid_distance_ticks",
    "ask_leaves": "bid_leaves",
    "halted": KEEP,
    "breach_streak": KEEP,
    "time_left": KEEP,
}
ONCHAIN_SUFFIXES = ("_change", "_known")
assert set(MICRO_FEATURES) <= set(MICRO_RULES) and set(FUNDING_FEATURES) <= set(STATE_RULES)
# book block columns (bid_offset_ticks, bid_size, ask_offset_ticks, ask_size): mirrored column j reads
# BOOK_SOURCE[j] with sign BOOK_SIGN[j]
BOOK_SOURCE = np.array([2, 3, 0, 1])
BOOK_SIGN = np.array([-1.0, 1.0, -1.0, 1.0], dtype=np.float32)
REGIME_MIRROR = np.array([REGIMES.index({"bull": "bear", "bear": "bull"}.get(r, r)) for r in REGIMES])


def _rule(name: str, rules: dict[str, str], prefix_rules: dict[str, str] | None = None) -> str | None:
    if name in rules:
        return rules[name]
    for prefix, rule in (prefix_rules or {}).items():
        if name.startswith(prefix):
            return rule
    return None


def column_map(
    names: tuple[str, ...], rules: dict[str, str], prefix_rules: dict[str, str] | None = None, block: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """(source index, sign) per column of a block: mirrored[..., j] = sign[j] * x[..., source[j]]."""
    index = {n: i for i, n in enumerate(names)}
    source, sign, unknown = [], [], []
    for i, name in enumerate(names):
        rule = _rule(name, rules, prefix_rules)
        if rule is None:
            unknown.append(name)
            continue
        if rule in (KEEP, FLIP):
            source.append(i)
            sign.append(-1.0 if rule == FLIP else 1.0)
        elif rule in index:
            source.append(index[rule])
            sign.append(1.0)
        else:
            raise ValueError(
                f"mirror: {block} column {name!r} swaps with {rule!r}, which the observation lacks"
            )
    if unknown:
        raise ValueError(
            f"mirror augmentation has no reflection rule for {block} columns {unknown}: add one to agent/mirror.py "
            "(keep, flip or the column it swaps with), or train with mirror_augment=False"
        )
    return np.asarray(source), np.asarray(sign, dtype=np.float32)


class ObservationMirror:
    """Reflects observations, actions, regimes and returns of one env layout (see the module docstring)."""

    def __init__(
        self,
        micro_names: tuple[str, ...],
        macro_names: tuple[str, ...],
        state_names: tuple[str, ...],
        n_size: int,
    ) -> None:
        onchain = {n: KEEP for n in state_names if n.endswith(ONCHAIN_SUFFIXES) and n not in STATE_RULES}
        self.maps = {
            "micro": column_map(micro_names, MICRO_RULES, block="micro"),
            "macro": column_map(macro_names, MACRO_RULES, MACRO_PREFIX_RULES, block="macro"),
            "state": column_map(state_names, {**STATE_RULES, **onchain}, block="state"),
            "book": (BOOK_SOURCE, BOOK_SIGN),
        }
        self.n_size = n_size

    @classmethod
    def for_env(cls, env) -> ObservationMirror:
        view = env.unwrapped.view
        return cls(
            tuple(view.micro_names),
            macro_feature_names(view.config.macro_horizons_s),
            state_feature_names(view.config),
            int(env.action_space.nvec[1]),
        )

    def observation(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The mirrored observation (new arrays; works on one observation or a batch)."""
        out = {}
        for key, value in obs.items():
            source, sign = self.maps[key]
            out[key] = (value[..., source] * sign).astype(value.dtype, copy=False)
        return out

    def action(self, action: np.ndarray) -> np.ndarray:
        """[price, size] -> [price, 2K - size]: the price offset is side-free, the target inventory flips."""
        mirrored = np.array(action, dtype=np.int64, copy=True)
        mirrored[..., 1] = self.n_size - 1 - mirrored[..., 1]
        return mirrored

    @staticmethod
    def regime(regime: int) -> int:
        return int(REGIME_MIRROR[regime])
