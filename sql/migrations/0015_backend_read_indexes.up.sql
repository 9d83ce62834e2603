-- Indexes for the backend's read queries (sql/queries, measured on a 1M-event index in
-- sql/queries/PLANS.md). Each serves a query that otherwise scans or sorts a whole
-- master's or coin's rows, or every claim of a distributor:
--
--   dividend_claims_token_idx   wallet_dividends: has this token id claimed dividend D of
--                               this distributor? Probed once per live NFT of the wallets,
--                               index-only (dividend_id is in the key).
--   master_nfts_live_owner_idx  master_holders, master_ipo_progress, marketplace_listing:
--                               a contract's live NFTs grouped by owner, index-only.
--   (coin_top_holders needs none: a coin's holders are one range of token_holders' primary
--   key, sorted; an index on balance would make every balance update of the indexer a
--   non-HOT update, measured at twice the cost of the whole balance upsert on a
--   production-shaped backfill.)
--
-- Plain CREATE INDEX (the runner wraps each migration in a transaction, which CONCURRENTLY
-- cannot run in): it blocks writes to each table while it builds, about a second per
-- million rows. No new table, so no grant.

create index dividend_claims_token_idx
    on dividend_claims (chain_id, distributor_address, token_id, dividend_id);
create index master_nfts_live_owner_idx
    on master_nfts (chain_id, contract_address, owner_address)
    where not is_burned;
