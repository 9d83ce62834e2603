-- Artist coins (ERC-20): the deployed tokens, every Transfer (raw, append-only)
-- and each holder's balance (derived). All written by the indexer.

-- From the factory's ArtistCoinDeployed. artist_id is the on-chain artistId and
-- deliberately has no foreign key to artists: an on-chain row must never wait
-- for (or be refused because of) an off-chain one.
create table artist_tokens (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    block_timestamp timestamptz not null,
    tx_hash bytea not null check (octet_length(tx_hash) = 32),
    log_index integer not null check (log_index >= 0),
    artist_id uuid not null,
    token_address bytea not null check (octet_length(token_address) = 20),
    symbol text not null,
    decimals smallint not null check (decimals between 0 and 255),
    -- Derived: mints - burns.
    -- No (>= 0) check: a backfill run out of order may add a burn before its mint;
    -- the sum converges once every range is indexed.
    total_supply numeric(78, 0) not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (chain_id, tx_hash, log_index),
    unique (chain_id, token_address)
);
create index artist_tokens_chain_id_block_number_idx on artist_tokens (chain_id, block_number);
create index artist_tokens_artist_id_idx on artist_tokens (artist_id);
create trigger artist_tokens_set_updated_at before update on artist_tokens
    for each row execute function set_updated_at();

create table token_transfers (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    block_timestamp timestamptz not null,
    tx_hash bytea not null check (octet_length(tx_hash) = 32),
    log_index integer not null check (log_index >= 0),
    token_address bytea not null check (octet_length(token_address) = 20),
    from_address bytea not null check (octet_length(from_address) = 20),
    to_address bytea not null check (octet_length(to_address) = 20),
    value numeric(78, 0) not null check (value >= 0),
    created_at timestamptz not null default now(),
    primary key (chain_id, tx_hash, log_index)
);
create index token_transfers_chain_id_block_number_idx on token_transfers (chain_id, block_number);
create index token_transfers_token_idx on token_transfers (chain_id, token_address);

-- A holder whose balance returns to 0 keeps its row with balance 0.
-- balance has no (balance >= 0) check on purpose: the indexer upserts each
-- batch's net delta, and PostgreSQL checks the proposed row (the delta, which
-- may be negative) before it resolves ON CONFLICT.
create table token_holders (
    chain_id bigint not null check (chain_id > 0),
    token_address bytea not null check (octet_length(token_address) = 20),
    holder_address bytea not null check (octet_length(holder_address) = 20),
    balance numeric(78, 0) not null,
    updated_block bigint not null check (updated_block >= 0),
    updated_at timestamptz not null default now(),
    primary key (chain_id, token_address, holder_address)
);
create index token_holders_holder_idx on token_holders (chain_id, holder_address);
create trigger token_holders_set_updated_at before update on token_holders
    for each row execute function set_updated_at();
