drop table indexer_reorgs;
drop table indexer_quarantine;
drop table indexer_blocks;
drop table indexer_checkpoints;
