-- Revenue: off-chain income reported for a master (backend) and the on-chain
-- dividends paid out of each master's distributor (indexer).

create table revenue_events (
    id uuid primary key default gen_random_uuid(),
    master_id uuid not null references masters (id),
    source_type text not null
        check (source_type in ('streaming', 'sync_licensing', 'performance', 'mechanical', 'direct_sale', 'other')),
    -- The source's own id for this payment; unique so re-ingesting a report is a no-op.
    source_reference text,
    -- Off-chain money: numeric(38,18) with a currency code (fiat or a token symbol).
    amount numeric(38, 18) not null check (amount >= 0),
    currency text not null check (currency ~ '^[A-Z0-9]{2,10}$'),
    period_start date,
    period_end date,
    status text not null default 'pending'
        check (status in ('pending', 'verified', 'distributed', 'rejected')),
    verified_by uuid references users (id) on delete set null,
    verified_at timestamptz,
    distributed_at timestamptz,
    -- The DividendDeposited transaction that paid it out, once distributed.
    distribution_chain_id bigint check (distribution_chain_id > 0),
    distribution_tx_hash bytea check (octet_length(distribution_tx_hash) = 32),
    rejection_reason text,
    metadata jsonb not null default '{}',
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (source_type, source_reference),
    check (period_end >= period_start)
);
create index revenue_events_master_id_created_at_idx on revenue_events (master_id, created_at desc);
create index revenue_events_status_created_at_idx on revenue_events (status, created_at);
create index revenue_events_verified_by_idx on revenue_events (verified_by);
create trigger revenue_events_set_updated_at before update on revenue_events
    for each row execute function set_updated_at();

-- DividendDeposited, raw. (chain_id, distributor_address, dividend_id) is not
-- unique: after a reorg the same id can be deposited again in another block
-- before the orphaned row is rewound.
create table dividend_events (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    block_timestamp timestamptz not null,
    tx_hash bytea not null check (octet_length(tx_hash) = 32),
    log_index integer not null check (log_index >= 0),
    distributor_address bytea not null check (octet_length(distributor_address) = 20),
    dividend_id numeric(78, 0) not null check (dividend_id >= 0),
    payer_address bytea not null check (octet_length(payer_address) = 20),
    -- 20 zero bytes = the chain's native coin.
    token_address bytea not null check (octet_length(token_address) = 20),
    amount numeric(78, 0) not null check (amount >= 0),
    amount_per_share numeric(78, 0) not null check (amount_per_share >= 0),
    created_at timestamptz not null default now(),
    primary key (chain_id, tx_hash, log_index)
);
create index dividend_events_chain_id_block_number_idx on dividend_events (chain_id, block_number);
create index dividend_events_dividend_idx on dividend_events (chain_id, distributor_address, dividend_id);

-- DividendClaimed, raw.
create table dividend_claims (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    block_timestamp timestamptz not null,
    tx_hash bytea not null check (octet_length(tx_hash) = 32),
    log_index integer not null check (log_index >= 0),
    distributor_address bytea not null check (octet_length(distributor_address) = 20),
    dividend_id numeric(78, 0) not null check (dividend_id >= 0),
    holder_address bytea not null check (octet_length(holder_address) = 20),
    token_id numeric(78, 0) not null check (token_id >= 0),
    amount numeric(78, 0) not null check (amount >= 0),
    created_at timestamptz not null default now(),
    primary key (chain_id, tx_hash, log_index)
);
create index dividend_claims_chain_id_block_number_idx on dividend_claims (chain_id, block_number);
create index dividend_claims_dividend_idx on dividend_claims (chain_id, distributor_address, dividend_id);
create index dividend_claims_holder_idx on dividend_claims (chain_id, holder_address);

-- Derived from dividend_claims: what each dividend has paid out so far.
create table dividend_totals (
    chain_id bigint not null check (chain_id > 0),
    distributor_address bytea not null check (octet_length(distributor_address) = 20),
    dividend_id numeric(78, 0) not null check (dividend_id >= 0),
    claimed_amount numeric(78, 0) not null default 0 check (claimed_amount >= 0),
    claims_count bigint not null default 0 check (claims_count >= 0),
    updated_at timestamptz not null default now(),
    primary key (chain_id, distributor_address, dividend_id)
);
create trigger dividend_totals_set_updated_at before update on dividend_totals
    for each row execute function set_updated_at();

-- Derived from dividend_claims: what each holder has claimed from a distributor.
create table dividend_holder_totals (
    chain_id bigint not null check (chain_id > 0),
    distributor_address bytea not null check (octet_length(distributor_address) = 20),
    holder_address bytea not null check (octet_length(holder_address) = 20),
    claimed_amount numeric(78, 0) not null default 0 check (claimed_amount >= 0),
    claims_count bigint not null default 0 check (claims_count >= 0),
    updated_at timestamptz not null default now(),
    primary key (chain_id, distributor_address, holder_address)
);
-- A holder's portfolio across distributors.
create index dividend_holder_totals_holder_idx on dividend_holder_totals (chain_id, holder_address);
create trigger dividend_holder_totals_set_updated_at before update on dividend_holder_totals
    for each row execute function set_updated_at();
