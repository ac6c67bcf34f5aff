"""Integrations with tools outside loopwright, each importing its tool only inside itself.

``serving``: a served model over HTTP (Open Inference Protocol, MLflow ``/invocations``).
``broker``: every event to NATS JetStream (the ``broker`` extra, nats-py).
``dask_select``: active-learning selection over Parquet pools on Dask (the ``cluster`` extra).
"""
