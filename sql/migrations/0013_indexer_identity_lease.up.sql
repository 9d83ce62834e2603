-- What an index indexes, and who may write it.
--
-- indexer_identity: recorded by the first `run` or `backfill` on a chain; every later
-- command compares its settings with it and refuses another factory or first block.
-- indexer_leases: one leader per chain. A replica follows only while it holds the
-- lease; taking it over increments `epoch`, and every commit of a follower checks,
-- inside its transaction, that its (holder, epoch) is still the lease's: the fence
-- that keeps a paused or partitioned old leader from writing after a takeover.
-- Expiry is judged by the database's clock alone, so replicas' clocks do not matter.

create table indexer_identity (
    chain_id bigint primary key check (chain_id > 0),
    factory_address bytea not null check (octet_length(factory_address) = 20),
    first_block bigint not null check (first_block >= 0),
    recorded_at timestamptz not null default now()
);

create table indexer_leases (
    chain_id bigint primary key check (chain_id > 0),
    holder text not null check (length(holder) between 1 and 200),
    epoch bigint not null check (epoch > 0),
    acquired_at timestamptz not null default now(),
    renewed_at timestamptz not null default now(),
    expires_at timestamptz not null,
    check (expires_at >= renewed_at)
);

grant select, insert, update, delete on indexer_identity, indexer_leases to audifi_indexer;
grant select on indexer_identity, indexer_leases to audifi_backend, audifi_analytics;
