"""What the sweep's fork server imports once, so that every worker forked from it starts ready.

Imported only by the fork server process (``forkserver.start_server``), never by the pipeline
itself: importing this module makes the process exit without tearing down its interpreter.

- the training stack: torch, Lightning and MLflow's client (the bulk of a worker's start-up;
  ``make bench`` measures it);
- MLflow's SQL tracking store and its ORM mappers, which each worker's first
  ``MlflowClient`` call would otherwise import. Modules only: no engine, no connection, no
  file is opened here, so nothing crosses the fork.
"""

import atexit
import os

import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
from sqlalchemy.orm import configure_mappers

import pipeline.sweep.phases  # noqa: F401
import pipeline.train.run  # noqa: F401

configure_mappers()

# The server holds no open file or connection: tearing down torch, Lightning and MLflow buys
# nothing, and the caller's output pipes, which the server shares, stay open meanwhile.
atexit.register(os._exit, 0)
