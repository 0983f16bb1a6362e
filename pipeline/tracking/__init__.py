"""Everything MLflow: the store (``store``), every name written there (``names``), the one
writer a run calls (``run_log``), a sweep's experiment and parent runs (``sweep_runs``), what
ran a run (``source``) and the UI's addresses and saved chart view (``ui``). Nothing here decides
a run's outcome: editing this package retrains nothing.
"""
