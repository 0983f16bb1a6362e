"""Experiments on long-term dependencies in recurrent networks.

Stages, one module each: ``data`` (task files), ``train`` (Lightning runs logged to MLflow,
with the gradient ``probe`` inside each run), ``report`` (figures and findings from MLflow).
"""
