"""WC-DNN window regressor and Adaptive Window Control (issue #5)."""
