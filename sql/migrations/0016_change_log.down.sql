drop table indexer_changes;
