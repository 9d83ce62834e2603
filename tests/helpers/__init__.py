"""What the tests share, one module per concern:

pg          the PostgreSQL server and a throw-away database per test
polling     wait_until / eventually: poll a condition, fail the test at a deadline
chain       the chain a test indexes; the indexer on it (settings, or a subprocess)
livechain   anvil with AudiFi activity that a test extends (mine, reorg, a thread of rounds)
chainstate  the chain as the oracle: compare and snapshot what the indexer stored
reorgs      forks on anvil and in-process following for the reorg tests
ops         the daemon's HTTP endpoints, a real Prometheus, a PostgreSQL a test stops
nodes       what the fault tests share: a lying node, proxies on a thread, the checks
proxy       RpcProxy: a fault-injecting JSON-RPC proxy between the indexer and anvil
faults      the faults RpcProxy injects, and what each does to an exchange
limits      how providers refuse eth_getLogs over their limits, and a limit to emulate
nodeview    what a lagging or limited node answers in the real one's place
"""
