drop table webhooks_log;
drop table security_events;
drop table audit_logs;
drop function reject_audit_log_change();
drop function create_month_partitions(regclass, date, integer);
