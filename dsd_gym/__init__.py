"""dsd-gym: a workbench for adaptive window control in distributed speculative decoding.

Importing the package registers the Gymnasium ids (``dsd_gym/DSD-v0``, ``dsd_gym/DSD-<scenario>-v0``
and their ``DSDFleet`` variants).
"""

__version__ = "0.1.0"

from dsd_gym.envs.registration import register_envs  # noqa: E402

register_envs()
