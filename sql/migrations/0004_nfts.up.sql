-- Master NFTs (ERC-721): every Transfer as it happened (raw, append-only) and
-- each token's current owner (derived). Both written by the indexer.

create table nft_transfers (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    block_timestamp timestamptz not null,
    tx_hash bytea not null check (octet_length(tx_hash) = 32),
    log_index integer not null check (log_index >= 0),
    contract_address bytea not null check (octet_length(contract_address) = 20),
    token_id numeric(78, 0) not null check (token_id >= 0),
    from_address bytea not null check (octet_length(from_address) = 20),
    to_address bytea not null check (octet_length(to_address) = 20),
    created_at timestamptz not null default now(),
    primary key (chain_id, tx_hash, log_index)
);
create index nft_transfers_chain_id_block_number_idx on nft_transfers (chain_id, block_number);
-- A token's history in chain order; also what a reorg rewind reads to find the
-- last surviving transfer.
create index nft_transfers_token_history_idx
    on nft_transfers (chain_id, contract_address, token_id, block_number, log_index);
create index nft_transfers_from_address_idx on nft_transfers (chain_id, from_address);
create index nft_transfers_to_address_idx on nft_transfers (chain_id, to_address);

create table master_nfts (
    id uuid primary key default gen_random_uuid(),
    chain_id bigint not null check (chain_id > 0),
    contract_address bytea not null check (octet_length(contract_address) = 20),
    token_id numeric(78, 0) not null check (token_id >= 0),
    -- The on-chain masterId of the contract (no foreign key, as master_contracts).
    master_id uuid not null,
    -- 20 zero bytes after a burn.
    owner_address bytea not null check (octet_length(owner_address) = 20),
    is_burned boolean not null default false,
    minted_block bigint check (minted_block >= 0),
    minted_at timestamptz,
    mint_tx_hash bytea check (octet_length(mint_tx_hash) = 32),
    last_transfer_block bigint not null check (last_transfer_block >= 0),
    last_transfer_log_index integer not null check (last_transfer_log_index >= 0),
    last_transfer_at timestamptz not null,
    last_transfer_tx_hash bytea not null check (octet_length(last_transfer_tx_hash) = 32),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (chain_id, contract_address, token_id)
);
create index master_nfts_owner_idx on master_nfts (chain_id, owner_address);
create index master_nfts_master_id_idx on master_nfts (master_id);
create trigger master_nfts_set_updated_at before update on master_nfts
    for each row execute function set_updated_at();
