"""RL baselines with Stable-Baselines3 (issue #6)."""
