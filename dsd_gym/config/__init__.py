"""Typed scenarios: the schema, YAML loading, ``--set`` overrides and error messages."""

from dsd_gym.config.loader import configs_dir, list_scenarios, load_profiles, load_scenario
from dsd_gym.config.schema import Scenario

__all__ = ["Scenario", "configs_dir", "list_scenarios", "load_profiles", "load_scenario"]
