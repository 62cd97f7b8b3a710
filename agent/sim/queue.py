"""Queue position of a resting order: where it joins, and how trades and book decreases move it forward.

An order joins behind the displayed size at its price. Trades at its price consume the quantity ahead first.
Any other decrease of the level is split between ahead and behind by a probability model `prob(front, back)`
= the probability that the decrease came from behind the order, as in hftbacktest's ProbQueueModel (the
quant.stackexchange 3782 / Rigtorp estimator): power `f(x)=x**n`, log `f(x)=log(1+x)` with
`f(back)/(f(back)+f(front))`, their `f(back)/f(back+front)` variants, `1-(front/(front+back))**n`, and a
risk-averse model where only trades move the order forward (a decrease can only cap the quantity ahead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from numba import njit

RISK_AVERSE = 0
POWER = 1
LOG = 2
POWER2 = 3
LOG2 = 4
POWER3 = 5
QUEUE_MODELS = {
    "risk_averse": RISK_AVERSE,
    "power": POWER,
    "log": LOG,
    "power2": POWER2,
    "log2": LOG2,
    "power3": POWER3,
}


@dataclass(frozen=True)
class QueueConfig:
    """`model`: one of QUEUE_MODELS; `n`: exponent of the power models; `partial_fills`: a trade that eats past
    the queue ahead fills only the part beyond it (False: the whole order fills once the queue ahead is gone,
    hftbacktest's NoPartialFillExchange rule)."""

    model: str = "power"
    n: float = 3.0
    partial_fills: bool = True

    def code(self) -> int:
        try:
            return QUEUE_MODELS[self.model]
        except KeyError:
            raise ValueError(
                f"unknown queue model {self.model!r}; choose one of {', '.join(QUEUE_MODELS)}"
            ) from None


@njit(cache=True)
def prob_behind(model: int, n: float, front: float, back: float) -> float:
    """Probability that a decrease of the level came from behind the order."""
    if model == POWER:
        fb = back**n
        return fb / (fb + front**n)
    if model == LOG:
        fb = math.log(1.0 + back)
        return fb / (fb + math.log(1.0 + front))
    if model == POWER2:
        return back**n / (back + front) ** n
    if model == LOG2:
        return math.log(1.0 + back) / math.log(1.0 + back + front)
    if model == POWER3:
        return 1.0 - (front / (front + back)) ** n
    return 0.0  # risk averse: decreases are all behind the order


@njit(cache=True)
def on_depth_change(model: int, n: float, front: float, cum_trade: float, prev_qty: float, new_qty: float):
    """New quantity ahead after the level went from prev_qty to new_qty; returns (front, cum_trade).

    Trades at the level since the last book update (cum_trade) already moved the order and are part of the
    decrease, so they are taken out of it. An increase never moves the order (new orders join behind).
    """
    chg = prev_qty - new_qty - cum_trade
    if model == RISK_AVERSE or chg < 0.0:
        return min(front, new_qty), 0.0
    back = prev_qty - front
    p = prob_behind(model, n, front, back)
    if math.isinf(p):
        p = 1.0
    if math.isnan(p):  # 0/0: an empty level; nothing can be ahead of more than what is left
        return new_qty, 0.0
    est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
    return min(est, new_qty), 0.0


@njit(cache=True)
def round_half_away(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0.0 else -math.floor(-x + 0.5)


@njit(cache=True)
def executable_after_trade(front: float, lot: float) -> float:
    """Quantity (in whole lots) that a trade has eaten past the queue ahead; 0 while the queue is not through.

    The front is an estimate in floating point, so it is counted in whole lots, rounded (half away from zero):
    through once it is below -half a lot (hftbacktest 2.4.4 counts the same way).
    """
    lots = round_half_away(-front / lot)
    return lots * lot if lots > 0.0 else 0.0
