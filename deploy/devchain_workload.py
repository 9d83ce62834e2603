"""Demo traffic for the docker-compose stack: deploys the AudiFi factory on the stack's
anvil, then keeps sending a seeded workload so that the indexer has something to follow.

Runs inside the indexer image (the dev-chain toolkit ships in the package):
    python /opt/audifi/devchain_workload.py            (docker-compose.yml, service "workload")

The factory is the first contract that anvil's first dev account deploys, so its address
is the same on every fresh anvil (EXPECTED_FACTORY, which docker-compose.yml gives the
indexer). Restarting this service on a chain that already has the factory reuses it.
"""

from __future__ import annotations

import os
import sys
import time

from indexer.devchain.contracts import Deployment, address_from_hex, hex_address
from indexer.devchain.rpc import RpcClient
from indexer.devchain.workload import Workload, WorkloadConfig

EXPECTED_FACTORY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def main() -> int:
    rpc_url = os.environ.get("AUDIFI_RPC_URL", "http://anvil:8545")
    events = int(os.environ.get("WORKLOAD_EVENTS_PER_ROUND", "200"))
    pause = float(os.environ.get("WORKLOAD_PAUSE_SECONDS", "5"))
    rounds = int(os.environ.get("WORKLOAD_ROUNDS", "0"))  # 0: forever
    with RpcClient(rpc_url) as rpc:
        existing = rpc.call("eth_getCode", [EXPECTED_FACTORY, "latest"])
        factory = None
        if existing not in ("0x", "0x0", None):
            factory = Deployment(address_from_hex(EXPECTED_FACTORY), 0)
        # Masters and coins get ids from the seed: a new seed per chain height keeps a
        # restarted service from deploying the same ids again (which reverts).
        seed = int(rpc.call("eth_blockNumber", []), 16)
        # anvil runs with --block-time here: the node mines by itself.
        config = WorkloadConfig(seed=seed, mine_blocks=False)
        workload = Workload(rpc, config, factory=factory)
        summary = workload.setup()
        if hex_address(summary.factory) != EXPECTED_FACTORY:
            print(
                f"factory deployed at {hex_address(summary.factory)}, expected "
                f"{EXPECTED_FACTORY}: set AUDIFI_FACTORY_ADDRESS to it",
                file=sys.stderr,
            )
            return 1
        print(f"factory {EXPECTED_FACTORY}: {summary.events} deployments", flush=True)
        done = 0
        while rounds == 0 or done < rounds:
            summary = workload.round(events)
            done += 1
            print(
                f"round {done}: {summary.events} events in blocks "
                f"{summary.first_block}..{summary.last_block}",
                flush=True,
            )
            time.sleep(pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
