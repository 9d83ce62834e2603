-- What was committed, so that it can be audited against the chain, and what the audit found.
--
-- indexer_coverage: the block ranges an index has committed, disjoint and merged (a
-- range adjacent to or overlapping another is stored as their union). Written in the
-- same transaction as the batch; a reorg or rewind cuts it back to the fork block.
-- indexer_ledger: per committed block that holds logs of tracked contracts the indexer
-- follows, their number and a digest over their (transaction hash, log index), with
-- the block hash they were committed under. A covered block without a row held none.
-- The auditor re-reads blocks by another path, recomputes both and compares.
-- indexer_audit: how far the auditor has audited each chain (every block up to
-- audited_to was compared once it was deep enough); `cuts` counts the rewinds and
-- reorgs that cut the index back, so that a position computed before one is not stored.
-- indexer_discrepancies: append-only, one row per block the audit found wrong and
-- healed: what the ledger said, what the chain holds, and how it was fixed.

create table indexer_coverage (
    chain_id bigint not null check (chain_id > 0),
    from_block bigint not null check (from_block >= 0),
    to_block bigint not null,
    primary key (chain_id, from_block),
    check (to_block >= from_block)
);

create table indexer_ledger (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    log_count integer not null check (log_count > 0),
    digest bytea not null check (octet_length(digest) = 16),
    primary key (chain_id, block_number)
);

create table indexer_audit (
    chain_id bigint primary key check (chain_id > 0),
    audited_to bigint not null check (audited_to >= -1),
    cuts bigint not null default 0 check (cuts >= 0),
    updated_at timestamptz not null default now()
);

create table indexer_discrepancies (
    id bigint generated always as identity primary key,
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    kind text not null check (kind in ('missing', 'extra', 'different', 'block_hash')),
    ledger_count integer not null check (ledger_count >= 0),
    chain_count integer not null check (chain_count >= 0),
    ledger_hash bytea,
    chain_hash bytea not null check (octet_length(chain_hash) = 32),
    source text not null check (source in ('receipts', 'audit_endpoint')),
    rows_removed integer not null check (rows_removed >= 0),
    rows_added integer not null check (rows_added >= 0),
    detected_at timestamptz not null default now()
);
create index indexer_discrepancies_chain_id_detected_at_idx
    on indexer_discrepancies (chain_id, detected_at);

-- A rewind an operator asked for is not a reorg of the chain: say which it was.
alter table indexer_reorgs add column cause text not null default 'chain'
    check (cause in ('chain', 'operator'));

alter table indexer_coverage owner to audifi_owner;
alter table indexer_ledger owner to audifi_owner;
alter table indexer_audit owner to audifi_owner;
alter table indexer_discrepancies owner to audifi_owner;

grant select, insert, update, delete on indexer_coverage, indexer_ledger, indexer_audit
    to audifi_indexer;
grant select, insert on indexer_discrepancies to audifi_indexer;
grant select on indexer_coverage, indexer_ledger, indexer_audit, indexer_discrepancies
    to audifi_backend, audifi_analytics;
