"""Baseline servers that implement the bench contract with other stacks, for comparison.

``psio_server`` is python-socketio's AsyncServer on Hypercorn; run it with
``python -m bench.baselines.psio_server``.
"""
