"""The train stage: every run of an experiment, resumably (``phases.run``): its phases (tuning,
then evaluation), resume, and the executors that train runs in forked worker processes
(``local_executor``) or on Ray (``ray_executor``), behind one contract (``worker.Executor``).
No imports here: ``forkserver`` must load without torch or MLflow.
"""
