-- V Studio: live creative sessions where fans vote on an artist's decisions.
-- vstudio_votes is not partitioned: one vote per user per decision point must
-- stay a unique constraint, which a table partitioned by time cannot enforce.

create table vstudio_sessions (
    id uuid primary key default gen_random_uuid(),
    artist_id uuid not null references artists (id),
    master_id uuid references masters (id) on delete set null,
    title text not null,
    description text,
    status text not null default 'draft'
        check (status in ('draft', 'scheduled', 'live', 'ended', 'cancelled')),
    -- Who may vote; checked by the backend against user_wallets and the chain tables.
    eligibility text not null default 'public'
        check (eligibility in ('public', 'nft_holders', 'coin_holders', 'nft_or_coin_holders')),
    starts_at timestamptz,
    ends_at timestamptz,
    total_votes bigint not null default 0 check (total_votes >= 0),
    participants_count integer not null default 0 check (participants_count >= 0),
    settings jsonb not null default '{}',
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (ends_at > starts_at)
);
create index vstudio_sessions_artist_id_idx on vstudio_sessions (artist_id);
create index vstudio_sessions_master_id_idx on vstudio_sessions (master_id);
create index vstudio_sessions_status_starts_at_idx on vstudio_sessions (status, starts_at);
create trigger vstudio_sessions_set_updated_at before update on vstudio_sessions
    for each row execute function set_updated_at();

create table vstudio_decision_points (
    id uuid primary key default gen_random_uuid(),
    vstudio_session_id uuid not null references vstudio_sessions (id) on delete cascade,
    position integer not null check (position >= 0),
    title text not null,
    description text,
    -- [{"key": "...", "label": "..."}, ...]; votes name one key.
    options jsonb not null default '[]',
    status text not null default 'pending'
        check (status in ('pending', 'open', 'closed', 'cancelled')),
    opens_at timestamptz,
    closes_at timestamptz,
    -- Filled when closed: the tally per option and the winner.
    result jsonb,
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (vstudio_session_id, position),
    -- Target of the votes' composite key: a vote's decision point is in its session.
    unique (id, vstudio_session_id)
);
create trigger vstudio_decision_points_set_updated_at before update on vstudio_decision_points
    for each row execute function set_updated_at();

create table vstudio_participants (
    vstudio_session_id uuid not null references vstudio_sessions (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    role text not null default 'fan' check (role in ('host', 'collaborator', 'fan')),
    votes_count integer not null default 0 check (votes_count >= 0),
    joined_at timestamptz not null default now(),
    last_active_at timestamptz,
    primary key (vstudio_session_id, user_id)
);
create index vstudio_participants_user_id_idx on vstudio_participants (user_id);

create table vstudio_votes (
    id uuid primary key default gen_random_uuid(),
    decision_point_id uuid not null,
    vstudio_session_id uuid not null,
    user_id uuid not null references users (id) on delete cascade,
    option_selected text not null,
    -- From the eligibility check: NFT count or coin balance, so as wide as uint256.
    weight numeric(78, 0) not null default 1 check (weight > 0),
    verified_nft_holder boolean not null default false,
    verified_coin_holder boolean not null default false,
    created_at timestamptz not null default now(),
    unique (decision_point_id, user_id),
    foreign key (decision_point_id, vstudio_session_id)
        references vstudio_decision_points (id, vstudio_session_id) on delete cascade
);
create index vstudio_votes_session_id_created_at_idx on vstudio_votes (vstudio_session_id, created_at);
create index vstudio_votes_user_id_idx on vstudio_votes (user_id);
