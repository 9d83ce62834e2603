-- Subscriptions and billing. Off-chain money is numeric(38,18) with a currency
-- code. Provider ids (Stripe and the like) are stored but never exposed by the API.

create table payment_providers (
    id uuid primary key default gen_random_uuid(),
    slug text not null unique,
    display_name text not null,
    kind text not null check (kind in ('card', 'crypto', 'bank')),
    is_enabled boolean not null default true,
    -- AES-256 ciphertexts written by the application (seeds §4.1); config_json
    -- is therefore bytea, not jsonb.
    webhook_secret bytea,
    config_json bytea,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create trigger payment_providers_set_updated_at before update on payment_providers
    for each row execute function set_updated_at();

create table payment_methods (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id) on delete cascade,
    payment_provider_id uuid not null references payment_providers (id),
    provider_method_id text not null,
    kind text not null check (kind in ('card', 'bank_account', 'crypto_wallet')),
    brand text,
    last4 text check (last4 ~ '^[0-9]{4}$'),
    exp_month smallint check (exp_month between 1 and 12),
    exp_year smallint,
    wallet_address bytea check (octet_length(wallet_address) = 20),
    is_default boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (payment_provider_id, provider_method_id)
);
create index payment_methods_user_id_idx on payment_methods (user_id);
create unique index payment_methods_one_default_key on payment_methods (user_id) where is_default;
create trigger payment_methods_set_updated_at before update on payment_methods
    for each row execute function set_updated_at();

create table subscriptions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id),
    plan_code text not null,
    status text not null default 'active'
        check (status in ('trialing', 'active', 'past_due', 'cancelled', 'expired')),
    payment_provider_id uuid references payment_providers (id),
    provider_subscription_id text,
    current_period_start timestamptz,
    current_period_end timestamptz,
    trial_ends_at timestamptz,
    cancel_at_period_end boolean not null default false,
    cancelled_at timestamptz,
    metadata jsonb not null default '{}',
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (payment_provider_id, provider_subscription_id),
    check (current_period_end > current_period_start)
);
create index subscriptions_user_id_idx on subscriptions (user_id);
-- Renewal and dunning jobs: "active subscriptions whose period ends before X".
create index subscriptions_status_period_end_idx on subscriptions (status, current_period_end);
create trigger subscriptions_set_updated_at before update on subscriptions
    for each row execute function set_updated_at();

create table invoices (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id),
    subscription_id uuid references subscriptions (id),
    payment_provider_id uuid references payment_providers (id),
    provider_invoice_id text,
    number text not null unique,
    status text not null default 'draft'
        check (status in ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency text not null check (currency ~ '^[A-Z0-9]{2,10}$'),
    subtotal numeric(38, 18) not null default 0 check (subtotal >= 0),
    tax numeric(38, 18) not null default 0 check (tax >= 0),
    total numeric(38, 18) not null default 0 check (total >= 0),
    amount_paid numeric(38, 18) not null default 0 check (amount_paid >= 0),
    line_items jsonb not null default '[]',
    due_at timestamptz,
    paid_at timestamptz,
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (payment_provider_id, provider_invoice_id)
);
create index invoices_user_id_created_at_idx on invoices (user_id, created_at desc);
create index invoices_subscription_id_idx on invoices (subscription_id);
create index invoices_status_due_at_idx on invoices (status, due_at);
create trigger invoices_set_updated_at before update on invoices
    for each row execute function set_updated_at();

create table payment_transactions (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references users (id),
    invoice_id uuid references invoices (id),
    payment_provider_id uuid not null references payment_providers (id),
    payment_method_id uuid references payment_methods (id) on delete set null,
    provider_transaction_id text,
    kind text not null check (kind in ('charge', 'refund', 'payout')),
    status text not null default 'pending'
        check (status in ('pending', 'succeeded', 'failed', 'refunded')),
    amount numeric(38, 18) not null check (amount >= 0),
    currency text not null check (currency ~ '^[A-Z0-9]{2,10}$'),
    -- Set for crypto payments: the transaction that settled it.
    chain_id bigint check (chain_id > 0),
    tx_hash bytea check (octet_length(tx_hash) = 32),
    failure_reason text,
    metadata jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (payment_provider_id, provider_transaction_id)
);
create index payment_transactions_user_id_created_at_idx on payment_transactions (user_id, created_at desc);
create index payment_transactions_invoice_id_idx on payment_transactions (invoice_id);
create index payment_transactions_payment_method_id_idx on payment_transactions (payment_method_id);
create index payment_transactions_status_created_at_idx on payment_transactions (status, created_at);
create trigger payment_transactions_set_updated_at before update on payment_transactions
    for each row execute function set_updated_at();
