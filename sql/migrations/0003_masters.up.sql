-- Masters: the recordings, who made them, their IPO configuration (backend)
-- and the contracts the factory deployed for them (indexer).

create table masters (
    id uuid primary key default gen_random_uuid(),
    artist_id uuid not null references artists (id),
    producer_id uuid references producers (id) on delete set null,
    title text not null,
    description text,
    genre text,
    cover_image_url text,
    audio_url text,
    isrc text unique,
    duration_seconds integer check (duration_seconds > 0),
    release_date date,
    status text not null default 'draft'
        check (status in ('draft', 'published', 'archived')),
    metadata jsonb not null default '{}',
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index masters_artist_id_idx on masters (artist_id);
create index masters_producer_id_idx on masters (producer_id);
create index masters_status_created_at_idx on masters (status, created_at desc);
create index masters_genre_idx on masters (genre);
create trigger masters_set_updated_at before update on masters
    for each row execute function set_updated_at();

-- Seeds §4.4: a role without BYPASSRLS sees only the masters of the artists
-- whose user is app.user_id; with app.user_id unset or empty it sees none.
-- Table owners and superusers are not subject to it.
alter table masters enable row level security;
create policy masters_artist_policy on masters
    for all
    using (
        artist_id in (
            select id
            from artists
            where user_id = nullif(current_setting('app.user_id', true), '')::uuid
        )
    );

create table master_collaborators (
    id uuid primary key default gen_random_uuid(),
    master_id uuid not null references masters (id) on delete cascade,
    user_id uuid references users (id) on delete set null,
    name text not null,
    role text not null
        check (role in ('artist', 'featured_artist', 'producer', 'songwriter', 'engineer', 'other')),
    share_bps integer not null default 0 check (share_bps between 0 and 10000),
    wallet_address bytea check (octet_length(wallet_address) = 20),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index master_collaborators_master_id_idx on master_collaborators (master_id);
create index master_collaborators_user_id_idx on master_collaborators (user_id);
create trigger master_collaborators_set_updated_at before update on master_collaborators
    for each row execute function set_updated_at();

-- Written by the indexer from the factory's MasterDeployed. master_id is the
-- on-chain masterId and deliberately has no foreign key to masters: the chain
-- is not ordered with the backend, and an on-chain row must never wait for
-- (or be refused because of) an off-chain one.
create table master_contracts (
    chain_id bigint not null check (chain_id > 0),
    block_number bigint not null check (block_number >= 0),
    block_hash bytea not null check (octet_length(block_hash) = 32),
    block_timestamp timestamptz not null,
    tx_hash bytea not null check (octet_length(tx_hash) = 32),
    log_index integer not null check (log_index >= 0),
    master_id uuid not null,
    nft_address bytea not null check (octet_length(nft_address) = 20),
    distributor_address bytea not null check (octet_length(distributor_address) = 20),
    total_supply numeric(78, 0) not null check (total_supply >= 0),
    minted_supply numeric(78, 0) not null default 0 check (minted_supply >= 0),
    burned_supply numeric(78, 0) not null default 0 check (burned_supply >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (chain_id, tx_hash, log_index),
    unique (chain_id, nft_address),
    unique (chain_id, distributor_address)
);
create index master_contracts_chain_id_block_number_idx on master_contracts (chain_id, block_number);
create index master_contracts_master_id_idx on master_contracts (master_id);
create trigger master_contracts_set_updated_at before update on master_contracts
    for each row execute function set_updated_at();

create table master_ipos (
    id uuid primary key default gen_random_uuid(),
    master_id uuid not null references masters (id),
    chain_id bigint check (chain_id > 0),
    status text not null default 'draft'
        check (status in ('draft', 'scheduled', 'live', 'completed', 'cancelled')),
    total_supply numeric(78, 0) check (total_supply > 0),
    -- Derived by the indexer: the sum of master_contracts.minted_supply for master_id.
    minted_supply numeric(78, 0) not null default 0 check (minted_supply >= 0),
    -- In the smallest unit of payment_token_address (20 zero bytes = native coin).
    mint_price numeric(78, 0) check (mint_price >= 0),
    payment_token_address bytea check (octet_length(payment_token_address) = 20),
    max_per_wallet integer check (max_per_wallet > 0),
    -- The artist's share is what the holders and the platform leave: 10000 - both.
    revenue_share_nft_holders_bps integer not null
        check (revenue_share_nft_holders_bps between 0 and 10000),
    retained_platform_bps integer not null default 0
        check (retained_platform_bps between 0 and 10000),
    scheduled_start_at timestamptz,
    scheduled_end_at timestamptz,
    actual_start_at timestamptz,
    actual_end_at timestamptz,
    created_by uuid references users (id) on delete set null,
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (revenue_share_nft_holders_bps + retained_platform_bps <= 10000),
    check (scheduled_end_at > scheduled_start_at)
);
create index master_ipos_master_id_idx on master_ipos (master_id);
-- One IPO in flight per master; a cancelled one may be followed by another.
create unique index master_ipos_master_id_open_key on master_ipos (master_id)
    where status <> 'cancelled';
create index master_ipos_status_scheduled_start_at_idx on master_ipos (status, scheduled_start_at);
create index master_ipos_created_by_idx on master_ipos (created_by);
create trigger master_ipos_set_updated_at before update on master_ipos
    for each row execute function set_updated_at();

-- The backend inserts IPO rows and the indexer updates minted_supply, in
-- separate transactions. Both take this per-master lock before reading the
-- other side, so neither can miss the other's uncommitted work.
create function lock_master_minted_supply(master_id uuid) returns void
language sql
as $$
    select pg_advisory_xact_lock(hashtext('master_ipos.minted_supply'), hashtext(master_id::text));
$$;

-- An IPO row created after mints happened is right at once.
create function master_ipos_fill_minted_supply() returns trigger
language plpgsql
as $$
begin
    perform lock_master_minted_supply(new.master_id);
    new.minted_supply := (
        select coalesce(sum(c.minted_supply), 0)
        from master_contracts as c
        where c.master_id = new.master_id
    );
    return new;
end
$$;
create trigger master_ipos_fill_minted_supply before insert on master_ipos
    for each row execute function master_ipos_fill_minted_supply();

-- For the indexer, in the transaction that changed master_contracts.minted_supply
-- (mints, burns, reorg rewinds): recomputes master_ipos.minted_supply for these masters.
create function sync_master_ipo_minted_supply(master_ids uuid[]) returns void
language plpgsql
as $$
declare
    one uuid;
begin
    -- Sorted, so two callers lock in the same order and cannot deadlock.
    for one in select distinct m from unnest(master_ids) as m order by m loop
        perform lock_master_minted_supply(one);
    end loop;
    update master_ipos as i
    set minted_supply = (
        select coalesce(sum(c.minted_supply), 0)
        from master_contracts as c
        where c.master_id = i.master_id
    )
    where i.master_id = any (master_ids);
end
$$;
