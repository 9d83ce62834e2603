-- The indexer's own bookkeeping.

-- Where each chain's indexing stands: the resume point and, through the hash,
-- the first reorg check. Committed in the transaction that writes the data.
create table indexer_checkpoints (
    chain_id bigint primary key check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    updated_at timestamptz not null default now()
);
create trigger indexer_checkpoints_set_updated_at before update on indexer_checkpoints
    for each row execute function set_updated_at();

-- The reorg window: the recent indexed blocks, linked by parent_hash.
create table indexer_blocks (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    parent_hash bytea not null check (octet_length(parent_hash) = 32),
    block_timestamp timestamptz not null,
    primary key (chain_id, block_number)
);

-- Logs from tracked contracts that could not be decoded, kept with the reason
-- instead of crashing or being dropped. Rewound with the raw tables on a reorg.
create table indexer_quarantine (
    id bigserial primary key,
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    block_timestamp timestamptz,
    tx_hash bytea not null check (octet_length(tx_hash) = 32),
    log_index integer not null check (log_index >= 0),
    address bytea not null check (octet_length(address) = 20),
    topics bytea[] not null,
    data bytea not null,
    reason text not null,
    created_at timestamptz not null default now(),
    unique (chain_id, tx_hash, log_index)
);
create index indexer_quarantine_chain_id_block_number_idx on indexer_quarantine (chain_id, block_number);

-- One row per reorg handled.
create table indexer_reorgs (
    id bigserial primary key,
    chain_id bigint not null check (chain_id > 0),
    detected_at timestamptz not null default now(),
    fork_block bigint check (fork_block >= 0),
    depth integer check (depth >= 0),
    old_head_hash bytea check (octet_length(old_head_hash) = 32),
    new_head_hash bytea check (octet_length(new_head_hash) = 32),
    events_reverted bigint check (events_reverted >= 0)
);
create index indexer_reorgs_chain_id_detected_at_idx on indexer_reorgs (chain_id, detected_at);
