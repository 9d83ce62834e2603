-- Identity: users, their login accounts and wallets, roles.
-- Also the trigger function every domain uses to keep updated_at honest
-- without trusting each writer to set it.

create function set_updated_at() returns trigger
language plpgsql
as $$
begin
    new.updated_at := now();
    return new;
end
$$;

create table users (
    id uuid primary key default gen_random_uuid(),
    email text not null,
    email_verified_at timestamptz,
    password_hash text,
    display_name text,
    avatar_url text,
    status text not null default 'active'
        check (status in ('active', 'suspended', 'deleted')),
    two_factor_enabled boolean not null default false,
    -- AES-256 ciphertext written by the application (seeds §4.1), never plaintext.
    two_factor_secret bytea,
    last_login_at timestamptz,
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index users_email_key on users (lower(email));
create index users_created_at_idx on users (created_at);
create trigger users_set_updated_at before update on users
    for each row execute function set_updated_at();

create table identity_providers (
    id uuid primary key default gen_random_uuid(),
    slug text not null unique,
    display_name text not null,
    kind text not null
        check (kind in ('credentials', 'oauth2', 'oidc', 'saml', 'wallet')),
    client_id text,
    -- AES-256 ciphertext written by the application (seeds §4.1).
    client_secret bytea,
    issuer_url text,
    config jsonb not null default '{}',
    is_enabled boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create trigger identity_providers_set_updated_at before update on identity_providers
    for each row execute function set_updated_at();

create table accounts (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id) on delete cascade,
    identity_provider_id uuid not null references identity_providers (id),
    provider_account_id text not null,
    -- AES-256 ciphertexts written by the application (seeds §4.1).
    access_token bytea,
    refresh_token bytea,
    expires_at timestamptz,
    scope text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (identity_provider_id, provider_account_id)
);
create index accounts_user_id_idx on accounts (user_id);
create trigger accounts_set_updated_at before update on accounts
    for each row execute function set_updated_at();

-- The addresses a user has proven to control: the portfolio and V Studio
-- eligibility join these to master_nfts / token_holders.
create table user_wallets (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id) on delete cascade,
    address bytea not null unique check (octet_length(address) = 20),
    label text,
    verified_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index user_wallets_user_id_idx on user_wallets (user_id);
create trigger user_wallets_set_updated_at before update on user_wallets
    for each row execute function set_updated_at();

create table roles (
    id uuid primary key default gen_random_uuid(),
    name text not null unique,
    description text,
    permissions jsonb not null default '[]',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create trigger roles_set_updated_at before update on roles
    for each row execute function set_updated_at();

create table user_roles (
    user_id uuid not null references users (id) on delete cascade,
    role_id uuid not null references roles (id) on delete cascade,
    granted_by uuid references users (id) on delete set null,
    granted_at timestamptz not null default now(),
    primary key (user_id, role_id)
);
create index user_roles_role_id_idx on user_roles (role_id);
create index user_roles_granted_by_idx on user_roles (granted_by);
