-- The index's change log: what the backend reads to catch up without missing anything.
--
-- One row per committed change of a chain's index that added or removed rows, written in
-- the same transaction as the rows, under the chain's writer lock. `seq` counts 1, 2, 3...
-- per chain with no gaps, in commit order: a reader that has seen seq N has seen every
-- change up to N, and reads on with `where chain_id = $1 and seq > $2 order by seq`.
--   batch:  blocks from_block..to_block were (re)indexed; their rows, as they are now,
--           are what it added (nft_transfers .. contracts count them).
--   reorg:  the chain reorganised: every row above from_block - 1 (the fork) was removed;
--           removed_from_block..removed_to_block were the blocks that held rows.
--   rewind: the same, asked for by an operator (`audifi-indexer rewind`).
--   heal:   the audit replaced one block's rows with the chain's (indexer_discrepancies).
--   forget: the chain's whole index was emptied (`audifi-indexer forget-chain`).
-- `invalidates` lists what a change that removed rows made stale (derived state that was
-- recomputed): {"complete": bool, "nfts": [[contract, tokenId]], "coinHolders": [[token,
-- holder]], "dividends": [[distributor, dividendId]], "dividendHolders": [[distributor,
-- holder]], "contracts": [address], "masters": [masterId]}; with "complete": false a list
-- was cut at its cap and everything of the chain at or above removed_from_block is stale.
-- Bulk backfills commit with synchronous_commit off: after a PostgreSQL crash their last
-- few changes may be lost and their seq written again by the redone work. A reader that
-- keeps (seq, committed_at) can tell: the row at its seq then has another committed_at.
-- The indexer only appends; pruning old rows is the owner's (`delete ... where
-- committed_at < ...`), never below a reader's cursor.

create table indexer_changes (
    chain_id bigint not null check (chain_id > 0),
    seq bigint not null check (seq > 0),
    kind text not null check (kind in ('batch', 'reorg', 'rewind', 'heal', 'forget')),
    from_block bigint not null check (from_block >= 0),
    to_block bigint not null,
    removed_from_block bigint,
    removed_to_block bigint,
    nft_transfers integer not null default 0 check (nft_transfers >= 0),
    coin_transfers integer not null default 0 check (coin_transfers >= 0),
    dividend_deposits integer not null default 0 check (dividend_deposits >= 0),
    dividend_claims integer not null default 0 check (dividend_claims >= 0),
    contracts integer not null default 0 check (contracts >= 0),
    rows_removed integer not null default 0 check (rows_removed >= 0),
    invalidates jsonb,
    committed_at timestamptz not null default now(),
    primary key (chain_id, seq),
    check (to_block >= from_block),
    check ((removed_from_block is null) = (removed_to_block is null)),
    check (removed_to_block >= removed_from_block),
    check ((rows_removed > 0) = (invalidates is not null) or kind = 'forget')
);
create index indexer_changes_committed_at_idx on indexer_changes (committed_at);

alter table indexer_changes owner to audifi_owner;
grant select, insert on indexer_changes to audifi_indexer;
grant select on indexer_changes to audifi_backend, audifi_analytics;
