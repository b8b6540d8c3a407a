"""Provenance of what wc_dnn makes: :func:`dsd_gym.provenance.code_version`."""

from dsd_gym.provenance import code_version

__all__ = ["code_version"]
