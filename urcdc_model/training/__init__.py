"""Helpers of the URCDC trainer (`python -m urcdc_model.train`): config, distributed setup, data, state."""
