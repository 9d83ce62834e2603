alter table indexer_reorgs drop column cause;
drop table indexer_discrepancies;
drop table indexer_audit;
drop table indexer_ledger;
drop table indexer_coverage;
