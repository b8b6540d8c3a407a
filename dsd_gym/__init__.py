"""dsd-gym: a workbench for adaptive window control in distributed speculative decoding."""

__version__ = "0.1.0"
