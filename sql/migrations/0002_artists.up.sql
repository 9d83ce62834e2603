-- Artists and producers: the public profiles behind masters, and who follows them.

create table artists (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id),
    artist_name text not null,
    slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    bio text,
    profile_image_url text,
    banner_image_url text,
    social_links jsonb not null default '{}',
    is_verified boolean not null default false,
    verified_at timestamptz,
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index artists_user_id_idx on artists (user_id);
create index artists_created_at_idx on artists (created_at);
create trigger artists_set_updated_at before update on artists
    for each row execute function set_updated_at();

create table producers (
    id uuid primary key default gen_random_uuid(),
    user_id uuid references users (id) on delete set null,
    display_name text not null,
    slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    bio text,
    profile_image_url text,
    social_links jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index producers_user_id_idx on producers (user_id);
create trigger producers_set_updated_at before update on producers
    for each row execute function set_updated_at();

create table artist_follows (
    user_id uuid not null references users (id) on delete cascade,
    artist_id uuid not null references artists (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (user_id, artist_id)
);
-- Follower lists, newest first, and follower counts.
create index artist_follows_artist_id_created_at_idx on artist_follows (artist_id, created_at desc);
