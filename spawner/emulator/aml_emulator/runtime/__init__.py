"""Compute-instance runtimes: processes on this machine, or Docker containers."""
