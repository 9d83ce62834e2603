drop table payment_transactions;
drop table invoices;
drop table subscriptions;
drop table payment_methods;
drop table payment_providers;
