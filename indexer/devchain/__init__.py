"""The local chain the tests, the demo and the benchmark run against.

anvil.py starts and stops anvil; rpc.py is a small synchronous JSON-RPC client;
contracts.py deploys and calls the AudiFi contracts (artifacts built by compile.mjs from
contracts/*.sol); workload.py generates seeded, deterministic activity; oracle.py reads the
resulting state back from the chain, independently of the indexer's own decoding.
"""
