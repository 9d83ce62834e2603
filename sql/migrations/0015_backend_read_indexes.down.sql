drop index master_nfts_live_owner_idx;
drop index dividend_claims_token_idx;
