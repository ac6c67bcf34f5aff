"""Integrations with tools outside loopwright, each importing its tool only inside itself.

``serving``: a served model over HTTP (Open Inference Protocol, MLflow ``/invocations``).
"""
