-- Take back every grant of 0012 and give the objects back to whoever runs the down
-- migration. The roles stay: other databases of the cluster may use them.

drop policy masters_analytics_read on masters;

revoke all on all tables in schema public from audifi_indexer, audifi_backend, audifi_analytics;
revoke all on all sequences in schema public
    from audifi_indexer, audifi_backend, audifi_analytics;
revoke usage on schema public from audifi_indexer, audifi_backend, audifi_analytics;
revoke usage, create on schema public from audifi_owner;

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
          and c.relowner = 'audifi_owner'::regrole
          and not (c.relkind = 'S' and exists (
              select from pg_depend as d
              where d.objid = c.oid and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    loop
        execute format('alter %s owner to %I', object.what, current_user);
    end loop;
    for object in
        select p.oid::regprocedure as what
        from pg_proc as p
        where p.pronamespace = 'public'::regnamespace and p.proowner = 'audifi_owner'::regrole
    loop
        execute format('alter function %s owner to %I', object.what, current_user);
    end loop;
end
$$;
