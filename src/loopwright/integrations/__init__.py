"""Integrations with tools outside loopwright, each importing its tool only inside itself.

``serving``: a served model over HTTP (Open Inference Protocol, MLflow ``/invocations``).
``broker``: every event to NATS JetStream (the ``broker`` extra, nats-py).
``dask_select``: active-learning selection over Parquet pools on Dask (the ``cluster`` extra).
``labelstudio``: Label Studio JSON ⇄ records and annotations, and its ML backend protocol
(standard library only; served by ``service/routes/labelstudio.py``).
``dagster`` / ``airflow``: assets, a sensor on events and a resource; a sensor and operators
(the extras of the same names). ``mlflow``: runs, Model Registry versions and the champion alias
(``mlflow`` extra, mlflow-skinny). ``dvc``: ``datasets export --format dvc --repo`` (``dvc`` extra).
"""
