drop table indexer_leases;
drop table indexer_identity;
