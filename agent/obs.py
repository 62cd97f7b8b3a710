"""The observation: its gymnasium Dict space, the name of every column, and how one is assembled per step.

Keys (shapes for the defaults; every value float32, clipped to +-OBS_BOUND):
  micro [micro_window, 10]  per-step market features, oldest first (view.micro_names: MICRO_FEATURES, then
                            a feature snapshot's columns when the view has them); the last row is the current
                            snapshot's features
  macro [21]                trailing aggregates over 1 / 5 / 15 / 60 min, regime one-hot, time of day
  book  [20, 4]             top-20 book relative to mid: bid offset in ticks, log1p(bid notional / scale), ask
                            offset in ticks, log1p(ask notional / scale); missing levels are zeros
  state [3 + 2 M + 17]      funding, on-chain (M metrics), then the account (ACCOUNT_FEATURES)
agent/nets.py's encoder takes micro, macro and a flat state: `encoder_inputs(obs)` joins book and state into it.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from agent.market_view import (
    FEATURE_BOUND,
    FUNDING_FEATURES,
    MarketView,
    ViewConfig,
    macro_feature_names,
    onchain_feature_names,
)

OBS_BOUND = FEATURE_BOUND
BOOK_COLUMNS = ("bid_offset_ticks", "bid_size", "ask_offset_ticks", "ask_size")
BOOK_LEVELS = 20  # levels per side in the book block
ACCOUNT_FEATURES = (
    "inventory",  # position / position cap (risk-scaled units), clipped to +-5
    "leverage_used",  # signed position notional / equity
    "unrealized_bp",  # unrealized PnL / equity, bp
    "episode_pnl_bp",  # equity change since the episode start / starting equity, bp
    "drawdown_bp",  # below the episode's peak equity, bp
    "margin_usage",  # maintenance margin / (position margin + unrealized PnL), 0 when flat
    "leverage_cap",  # risk leverage cap / max leverage
    "entry_edge_bp",  # (mid - entry) * sign(position) / mid, bp
    "bid_live",
    "bid_distance_ticks",  # best bid - our bid, ticks (0 when none)
    "bid_leaves",  # our bid's open quantity / position cap
    "ask_live",
    "ask_distance_ticks",
    "ask_leaves",
    "halted",  # a kill switch holds trading
    "breach_streak",  # / 10
    "time_left",  # fraction of the episode still to run
)


def state_feature_names(config: ViewConfig) -> tuple[str, ...]:
    return (*FUNDING_FEATURES, *onchain_feature_names(config.onchain_metrics), *ACCOUNT_FEATURES)


def observation_space(view: MarketView) -> spaces.Dict:
    config = view.config

    def box(*shape: int) -> spaces.Box:
        return spaces.Box(-OBS_BOUND, OBS_BOUND, shape=shape, dtype=np.float32)

    return spaces.Dict(
        {
            "micro": box(config.micro_window, len(view.micro_names)),
            "macro": box(len(macro_feature_names(config.macro_horizons_s))),
            "book": box(BOOK_LEVELS, len(BOOK_COLUMNS)),
            "state": box(len(state_feature_names(config))),
        }
    )


def book_features(
    bid_px, bid_sz, ask_px, ask_sz, mid: float, tick: float, notional_scale: float
) -> np.ndarray:
    """The [levels, 4] book block for one snapshot (offsets in ticks: the touch sits at +-spread/2)."""
    out = np.empty((bid_px.shape[0], 4))
    out[:, 0] = (bid_px - mid) / tick
    out[:, 1] = np.log1p(bid_sz * mid / notional_scale)
    out[:, 2] = (ask_px - mid) / tick
    out[:, 3] = np.log1p(ask_sz * mid / notional_scale)
    return out


def assemble(view: MarketView, k: int, account: np.ndarray) -> dict[str, np.ndarray]:
    """The observation at step k from the market view and the account features (len(ACCOUNT_FEATURES))."""
    m = view.market
    j = int(view.book_index[k])
    mid = float(view.mid[k])
    book = book_features(
        m.bid_px[j], m.bid_sz[j], m.ask_px[j], m.ask_sz[j], mid, m.tick_size, view.config.notional_scale
    )
    state = np.concatenate([view.funding[k], view.onchain[k], account])
    return {  # micro and macro were cleaned and clipped when the view was built
        "micro": view.micro_window(k),
        "macro": view.macro[k].copy(),
        "book": _clean(book),
        "state": _clean(state),
    }


def encoder_input_columns(view: MarketView, names: tuple[str, ...]) -> dict[str, list[int]]:
    """Column indices, per encoder stream (micro, macro, state as `encoder_inputs` builds them: the flattened book,
    then the state), of observation features named like view.micro_names, macro_feature_names, state_feature_names
    or "book" (the whole book block). Unknown names are refused with the list of known ones."""
    micro = list(view.micro_names)
    macro = list(macro_feature_names(view.config.macro_horizons_s))
    book_width = BOOK_LEVELS * len(BOOK_COLUMNS)
    state = ["book"] * book_width + list(state_feature_names(view.config))
    unknown = [n for n in names if n not in micro + macro + state]
    if unknown:
        raise ValueError(
            f"unknown observation features {unknown}; known: micro {micro}, macro {macro}, "
            f"state ['book', {', '.join(map(repr, state[book_width:]))}]"
        )
    return {
        "micro": [i for i, n in enumerate(micro) if n in names],
        "macro": [i for i, n in enumerate(macro) if n in names],
        "state": [i for i, n in enumerate(state) if n in names],
    }


def encoder_inputs(obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(micro, macro, state) for agent/nets.MultiStreamStateEncoder: the book is flattened into the state.
    Works on one observation or on a batch (leading axes kept)."""
    book = obs["book"]
    lead = book.shape[:-2]
    flat_book = book.reshape(*lead, -1)
    return obs["micro"], obs["macro"], np.concatenate([flat_book, obs["state"]], axis=-1)


def _clean(a: np.ndarray) -> np.ndarray:
    out = np.asarray(a, dtype=np.float32)
    if not np.isfinite(out).all():
        out = np.nan_to_num(out, nan=0.0, posinf=OBS_BOUND, neginf=-OBS_BOUND)
    return np.clip(out, -OBS_BOUND, OBS_BOUND, out=out)
