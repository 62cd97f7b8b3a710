"""Market replay engine: matching with queue position, latency, fees, isolated-margin perp accounting, funding.

Entry points: `MarketData` (market.py) for the input, `Simulator` + `SimConfig` (engine.py) for the step API,
`run_touch_quoter` (quoter.py) for the compiled batch path.
"""

from agent.sim.engine import AccountState, SimConfig, Simulator, StepResult
from agent.sim.fees import FeeConfig
from agent.sim.latency import LatencyConfig, LatencyModel
from agent.sim.margin import MarginConfig, liquidation_price, tiers_for
from agent.sim.market import MarketData
from agent.sim.orders import BUY, SELL
from agent.sim.queue import QueueConfig

__all__ = [
    "BUY",
    "SELL",
    "AccountState",
    "FeeConfig",
    "LatencyConfig",
    "LatencyModel",
    "MarginConfig",
    "MarketData",
    "QueueConfig",
    "SimConfig",
    "Simulator",
    "StepResult",
    "liquidation_price",
    "tiers_for",
]
