"""The compute client: the only code that talks to Azure Machine Learning.

    from aml_jupyterhub.compute import ComputeClient, InstanceSpec, make_ml_client
"""

from .client import ComputeClient, shared_executor
from .errors import (
    Busy,
    ComputeError,
    ForeignInstance,
    InstanceFailed,
    InvalidRequest,
    NotFound,
    OperationTimeout,
    PermissionDenied,
    QuotaExceeded,
    ServiceUnavailable,
    SizeNotOffered,
    Throttled,
)
from .models import InstanceInfo, InstanceSpec, Progress, Usage, VmSize
from .sdk import StaticTokenCredential, make_ml_client

__all__ = [
    "Busy", "ComputeClient", "ComputeError", "ForeignInstance", "InstanceFailed", "InstanceInfo", "InstanceSpec", "InvalidRequest",
    "NotFound", "OperationTimeout", "PermissionDenied", "Progress", "QuotaExceeded", "ServiceUnavailable",
    "SizeNotOffered", "StaticTokenCredential", "Throttled", "Usage", "VmSize", "make_ml_client", "shared_executor",
]
