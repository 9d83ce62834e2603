-- Indexes for the backend's read queries (sql/queries, measured on a 1M-event index in
-- sql/queries/PLANS.md). Each serves a query that otherwise scans or sorts a whole
-- master's or coin's rows, or every claim of a distributor:
--
--   dividend_claims_token_idx   wallet_dividends: has this token id claimed dividend D of
--                               this distributor? Probed once per live NFT of the wallets,
--                               index-only (dividend_id is in the key).
--   master_nfts_live_owner_idx  master_holders, master_ipo_progress, marketplace_listing:
--                               a contract's live NFTs grouped by owner, index-only.
--   token_holders_top_idx       coin_top_holders: the first N entries are the answer. It
--                               makes balance an indexed column, so the indexer's balance
--                               updates are no longer HOT; the cost is one more index entry
--                               per changed balance.
--
-- Plain CREATE INDEX (the runner wraps each migration in a transaction, which CONCURRENTLY
-- cannot run in): it blocks writes to each table while it builds, about a second per
-- million rows. No new table, so no grant.

create index dividend_claims_token_idx
    on dividend_claims (chain_id, distributor_address, token_id, dividend_id);
create index master_nfts_live_owner_idx
    on master_nfts (chain_id, contract_address, owner_address)
    where not is_burned;
create index token_holders_top_idx
    on token_holders (chain_id, token_address, balance desc, holder_address)
    where balance > 0;
