-- Observability: the audit trail, security events and the webhook log.
-- audit_logs and webhooks_log grow without bound and are only ever read by
-- recent time, so they are partitioned by created_at month: retention drops a
-- whole partition instead of deleting rows.

-- Creates the monthly partitions of a table range-partitioned on created_at,
-- for `months` months from the month of first_month (UTC); existing ones stay.
-- Run it ahead of time (monthly, from the backend's scheduler): a row for a
-- month without a partition lands in <table>_default, and that month's
-- partition cannot be created while the default holds rows for it.
create function create_month_partitions(parent regclass, first_month date, months integer)
returns void
language plpgsql
as $$
declare
    parent_schema text;
    parent_name text;
    month_start timestamp;
begin
    select n.nspname, c.relname
    into parent_schema, parent_name
    from pg_class as c
    join pg_namespace as n on n.oid = c.relnamespace
    where c.oid = parent;
    for i in 0 .. months - 1 loop
        month_start := date_trunc('month', first_month::timestamp) + make_interval(months => i);
        execute format(
            'create table if not exists %I.%I partition of %I.%I for values from (%L) to (%L)',
            parent_schema,
            parent_name || '_p' || to_char(month_start, 'YYYYMM'),
            parent_schema,
            parent_name,
            month_start at time zone 'UTC',
            (month_start + interval '1 month') at time zone 'UTC'
        );
    end loop;
end
$$;

create table audit_logs (
    id uuid not null default gen_random_uuid(),
    -- No foreign key: the trail outlives the users and objects it names.
    actor_user_id uuid,
    action text not null,
    target_type text not null,
    target_id uuid,
    changes jsonb not null default '{}',
    ip_address inet,
    user_agent text,
    request_id text,
    created_at timestamptz not null default now(),
    primary key (id, created_at)
) partition by range (created_at);
create table audit_logs_default partition of audit_logs default;
create index audit_logs_target_idx on audit_logs (target_type, target_id, created_at desc);
create index audit_logs_actor_idx on audit_logs (actor_user_id, created_at desc);
create index audit_logs_action_idx on audit_logs (action, created_at desc);
select create_month_partitions('audit_logs', (now() at time zone 'UTC')::date, 3);

-- Seeds §4.2: append-only for the application. Retention detaches or drops
-- partitions, which is DDL and not stopped by this.
create function reject_audit_log_change() returns trigger
language plpgsql
as $$
begin
    raise exception 'audit_logs is append-only: % is not allowed', tg_op
        using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_logs_append_only before update or delete on audit_logs
    for each row execute function reject_audit_log_change();
create trigger audit_logs_no_truncate before truncate on audit_logs
    for each statement execute function reject_audit_log_change();

create table security_events (
    id uuid primary key default gen_random_uuid(),
    event_type text not null,
    severity text not null check (severity in ('low', 'medium', 'high', 'critical')),
    user_id uuid references users (id) on delete set null,
    title text not null,
    description text,
    ip_address inet,
    user_agent text,
    event_data jsonb not null default '{}',
    resolved_at timestamptz,
    resolved_by uuid references users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index security_events_user_id_idx on security_events (user_id);
create index security_events_resolved_by_idx on security_events (resolved_by);
create index security_events_severity_created_at_idx on security_events (severity, created_at desc);
create index security_events_event_type_created_at_idx on security_events (event_type, created_at desc);
create trigger security_events_set_updated_at before update on security_events
    for each row execute function set_updated_at();

-- Every webhook delivery as received, retries included (so no unique key on
-- the provider's event id), and what processing made of it.
create table webhooks_log (
    id uuid not null default gen_random_uuid(),
    provider text not null,
    event_type text,
    external_event_id text,
    signature_valid boolean,
    headers jsonb not null default '{}',
    payload jsonb not null,
    status text not null default 'received'
        check (status in ('received', 'processed', 'failed', 'ignored')),
    attempts integer not null default 0 check (attempts >= 0),
    error text,
    processed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (id, created_at)
) partition by range (created_at);
create table webhooks_log_default partition of webhooks_log default;
create index webhooks_log_external_event_idx on webhooks_log (provider, external_event_id);
create index webhooks_log_status_created_at_idx on webhooks_log (status, created_at);
select create_month_partitions('webhooks_log', (now() at time zone 'UTC')::date, 3);
create trigger webhooks_log_set_updated_at before update on webhooks_log
    for each row execute function set_updated_at();
