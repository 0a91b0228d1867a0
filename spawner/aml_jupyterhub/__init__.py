"""aml-jupyterhub: JupyterHub on Azure Machine Learning compute instances."""

__version__ = "0.1.0"
