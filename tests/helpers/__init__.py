"""What the tests share, one module per concern:

pg          the PostgreSQL server, a throw-away database per test, logins a test creates
polling     wait_until / eventually: poll a condition, fail the test at its deadline
chain       the chain a test indexes; the indexer on it (settings, or a subprocess)
livechain   anvil with AudiFi activity that a test extends (mine, reorg, a thread of rounds)
chainstate  the chain as the oracle: compare, snapshot and reference what the indexer stored
reorgs      forks on anvil and in-process following for the reorg tests
ops         the daemon's HTTP endpoints and metrics, a real Prometheus, a PostgreSQL to stop
proxy       RpcProxy: a fault-injecting JSON-RPC proxy between the indexer and anvil
faults      the faults RpcProxy injects, and what each does to an exchange
limits      how providers refuse eth_getLogs over their limits, and a limit to emulate
nodeview    what a lagging or limited node answers in the real one's place
nodes       beyond RpcProxy: a node that lies (Tamper), a counting proxy, proxies on a thread
"""
