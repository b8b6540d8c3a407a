"""The RL algorithms ``dsd-gym train rl --algo`` accepts: :mod:`dsd_gym.controllers.rl_algos`.

The table is defined in dsd_gym so that ``sb3:PATH`` can load a run's model without importing
``agents`` (DESIGN §2); this module is its name on the training side.
"""

from dsd_gym.controllers.rl_algos import ALGOS, Algo, algo

__all__ = ["ALGOS", "Algo", "algo"]
