"""Real runs on this machine: the same algorithms as separate processes, measured.

:mod:`.run` trains a config's problem with SwarmSGD (blocking or non-blocking) or D-PSGD
as ``n`` OS processes over shared memory with real locks and barriers, and records every
step's duration (a trace ``gossipsim`` replays) and the mean model's loss against
wall-clock time. :mod:`.compare` simulates the same configuration from the measured
step times and compares the predicted curve with the measured one.
"""

from gossipsim.real.compare import Comparison, compare, simulated_config
from gossipsim.real.run import SUPPORTED, RealRun, RealRunError, run_real

__all__ = [
    "SUPPORTED",
    "Comparison",
    "RealRun",
    "RealRunError",
    "compare",
    "run_real",
    "simulated_config",
]
