"""Compute-instance runtimes: processes on this machine, or Docker containers.

``base`` is what the backend asks of a runtime; ``process`` and ``docker``
implement it; ``probes`` (readiness waits, free ports) and ``lab`` (AML's
JupyterLab command line) are what the two share, so neither imports the other.
"""
