"""A local emulator of the Azure Machine Learning control plane and of Azure AD.

Start it with ``python -m aml_emulator --port PORT --state-dir DIR``;
see ``--help`` and the project README.
"""
