"""Training one run: its story (``run.train_run``), the LightningModule (``module``), the batches
it trains on, and its saved network (``saved``). This is the outcome code: editing it makes every
finished run stale (``stages``).
"""
