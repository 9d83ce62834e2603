-- What an index indexes, and who may write it.
--
-- indexer_identity: recorded by the first `run` or `backfill` on a chain; every later
-- command compares its settings with it and refuses another factory or first block.
-- indexer_leases: one leader per chain. A replica follows only while it holds the
-- lease; taking it over increments `epoch`, and every commit of a follower checks,
-- inside its transaction, that its (holder, epoch) is still the lease's: the fence
-- that keeps a paused or partitioned old leader from writing after a takeover.
-- Expiry is judged by the database's clock alone, so replicas' clocks do not matter.
-- A leader's writing transactions carry application_name 'audifi-indexer leader
-- CHAIN:EPOCH', so that a new leader can end an old leader's transaction in flight
-- (pg_terminate_backend needs no privilege over sessions of one's own role).

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

-- Owned like every object (0012), whoever runs the migration.
alter table indexer_identity owner to audifi_owner;
alter table indexer_leases owner to audifi_owner;

grant select, insert, update, delete on indexer_identity, indexer_leases to audifi_indexer;
grant select on indexer_identity, indexer_leases to audifi_backend, audifi_analytics;
