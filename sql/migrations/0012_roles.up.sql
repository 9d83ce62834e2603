-- Least privilege: one group role per kind of client, granted only what it uses.
--
--   audifi_owner      owns every object of the schema; migrations run as it (a login
--                     that is a member and runs `set role audifi_owner`). DDL is its alone.
--   audifi_indexer    the indexer: reads and writes the chain tables and its own
--                     bookkeeping, sets master_ipos.minted_supply (through
--                     sync_master_ipo_minted_supply), reads schema_migrations. No DDL, no
--                     TRUNCATE, nothing of users, accounts, billing, audit or V Studio.
--   audifi_backend    the AudiFi services: reads and writes the off-chain tables except
--                     master_ipos.minted_supply; reads the chain tables. audit_logs is
--                     insert-only for it (the table's trigger refuses changes anyway).
--                     masters has row-level security: a backend that serves public pages
--                     needs BYPASSRLS or a policy of its own (seeds §4.4).
--   audifi_analytics  read-only: the chain tables, the dashboards, the business tables;
--                     never a secret, a token, an e-mail address or a provider's id.
--
-- The roles are cluster-wide and NOLOGIN; an operator gives each service a login that
-- is a member: `create role audifi_indexer_app login password '...' in role audifi_indexer`.
-- They are created here if missing (the runner then needs CREATEROLE) and never dropped
-- by the down migration: other databases of the cluster may use them. Creating them is
-- safe while other databases of the same cluster migrate at the same time.
--
-- New tables in later migrations get their grants in the same migration.

do $$
declare
    name text;
begin
    foreach name in array array['audifi_owner', 'audifi_indexer', 'audifi_backend',
                                'audifi_analytics'] loop
        if not exists (select from pg_roles where rolname = name) then
            begin
                execute format('create role %I nologin', name);
            exception when duplicate_object or unique_violation then
                null;  -- another database's migration created it meanwhile
            end;
        end if;
    end loop;
end
$$;

-- Everything in the schema belongs to the owner role (sequences owned by a column
-- follow their table; partitions are relations of their own).
do $$
declare
    object record;
begin
    for object in
        select format('%s %I.%I', case c.relkind when 'v' then 'view'
                                                 when 'm' then 'materialized view'
                                                 when 'S' then 'sequence'
                                                 else 'table' end,
                      n.nspname, c.relname) as what
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'S')
          and not (c.relkind = 'S' and exists (
              select from pg_depend as d
              where d.objid = c.oid and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    loop
        execute format('alter %s owner to audifi_owner', object.what);
    end loop;
    for object in
        select p.oid::regprocedure as what
        from pg_proc as p
        where p.pronamespace = 'public'::regnamespace
    loop
        execute format('alter function %s owner to audifi_owner', object.what);
    end loop;
end
$$;

grant usage, create on schema public to audifi_owner;
grant usage on schema public to audifi_indexer, audifi_backend, audifi_analytics;

-- The indexer.
grant select, insert, update, delete on
    master_contracts, artist_tokens,
    nft_transfers, master_nfts,
    dividend_events, dividend_claims, dividend_totals, dividend_holder_totals,
    token_transfers, token_holders,
    indexer_checkpoints, indexer_blocks, indexer_quarantine, indexer_reorgs
    to audifi_indexer;
grant usage on sequence indexer_quarantine_id_seq, indexer_reorgs_id_seq to audifi_indexer;
grant select (id, master_id, minted_supply), update (minted_supply) on master_ipos
    to audifi_indexer;
grant select on schema_migrations to audifi_indexer;

-- The backend: the off-chain tables, and reading the chain.
grant select, insert, update, delete on
    users, identity_providers, accounts, user_wallets, roles, user_roles,
    artists, producers, artist_follows,
    masters, master_collaborators,
    revenue_events,
    vstudio_sessions, vstudio_decision_points, vstudio_participants, vstudio_votes,
    payment_providers, payment_methods, subscriptions, invoices, payment_transactions,
    security_events, webhooks_log
    to audifi_backend;
grant select, insert, delete on master_ipos to audifi_backend;
do $$
declare
    columns text;
begin
    select string_agg(quote_ident(attname), ', ' order by attnum) into columns
    from pg_attribute
    where attrelid = 'master_ipos'::regclass and attnum > 0 and not attisdropped
      and attname <> 'minted_supply';
    execute format('grant update (%s) on master_ipos to audifi_backend', columns);
end
$$;
grant select, insert on audit_logs to audifi_backend;
grant select on
    master_contracts, artist_tokens, nft_transfers, master_nfts,
    dividend_events, dividend_claims, dividend_totals, dividend_holder_totals,
    token_transfers, token_holders,
    indexer_checkpoints, indexer_blocks, indexer_quarantine, indexer_reorgs,
    artist_performance, master_ipo_stats, schema_migrations
    to audifi_backend;

-- Analytics: read-only, no secrets. users, accounts, identity_providers and
-- payment_providers/methods are readable only in their harmless columns.
grant select on
    master_contracts, artist_tokens, nft_transfers, master_nfts,
    dividend_events, dividend_claims, dividend_totals, dividend_holder_totals,
    token_transfers, token_holders,
    indexer_checkpoints, indexer_blocks, indexer_quarantine, indexer_reorgs,
    artist_performance, master_ipo_stats,
    artists, producers, artist_follows, user_wallets, roles, user_roles,
    masters, master_collaborators, master_ipos, revenue_events,
    vstudio_sessions, vstudio_decision_points, vstudio_participants, vstudio_votes,
    subscriptions, invoices, payment_transactions
    to audifi_analytics;
grant select (id, display_name, avatar_url, status, email_verified_at, two_factor_enabled,
              last_login_at, created_at, updated_at) on users to audifi_analytics;
grant select (id, user_id, identity_provider_id, expires_at, scope, created_at, updated_at)
    on accounts to audifi_analytics;
grant select (id, slug, display_name, kind, is_enabled, created_at, updated_at)
    on identity_providers to audifi_analytics;
grant select (id, slug, display_name, is_enabled, created_at, updated_at)
    on payment_providers to audifi_analytics;
grant select (id, user_id, payment_provider_id, brand, exp_year, is_default, created_at,
              updated_at) on payment_methods to audifi_analytics;
-- Row-level security would show analytics no master at all.
create policy masters_analytics_read on masters for select to audifi_analytics using (true);
