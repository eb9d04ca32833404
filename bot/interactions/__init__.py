"""Answering the person behind an interaction: refusals, confirmations, unexpected errors."""
