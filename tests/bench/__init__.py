"""The performance benchmark of issue 7: `python -m tests.bench` (or `make bench`).

One run per size: a cached, deterministic AudiFi chain on anvil (chaincache), the two
ceilings of this machine (ceilings), the real `backfill` CLI into a fresh database with its
peak RSS and the oracle check (endtoend), the daemon's receipt-to-visible latency at the
head (latency), then a table and a JSON report (report). `--profile` adds one backfill
under py-spy and a pg_stat_activity sampler (profiling). Every process the benchmark
starts is stopped by its PID (procs), also on Ctrl-C.
"""
