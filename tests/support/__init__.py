"""Test support: a fault-injecting JSON-RPC proxy to put between the indexer and anvil."""

from .faults import Fault, FaultSettings, Scope
from .limits import PROVIDER_LIMIT_ERRORS, LimitError, LogLimit, limit_error
from .rpcproxy import ProxyStats, RpcProxy

__all__ = [
    "PROVIDER_LIMIT_ERRORS",
    "Fault",
    "FaultSettings",
    "LimitError",
    "LogLimit",
    "ProxyStats",
    "RpcProxy",
    "Scope",
    "limit_error",
]
