"""Signatures of training frames and vectorized validation of batches against them."""
