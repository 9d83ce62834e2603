-- name: wallet_nfts
-- endpoint: GET /me/portfolio
-- params: $1 user_id uuid, $2 after_chain_id bigint, $3 after_contract text, $4 after_token_id text, $5 limit int
-- budget_ms: 10
-- The live (not burned) master NFTs owned by any of the user's wallets (user_wallets),
-- across every chain, one row per NFT, in (chain_id, contract, token_id) order.
-- Keyset pagination: pass the last row's (chain_id, contract, token_id) as $2..$4;
-- the first page is $2 = 0, $3 = '0x', $4 = '-1'.
-- master_nfts_owner_idx is (chain_id, owner_address): the wallets are crossed with the
-- chains the index knows (master_contracts, a few dozen rows) so that every probe gives
-- both columns, instead of a scan of the whole index for owner_address alone.
select
    n.chain_id,
    n.master_id,
    '0x' || encode(n.contract_address, 'hex') as contract,
    n.token_id::text as token_id,
    '0x' || encode(n.owner_address, 'hex') as owner,
    n.minted_at,
    n.last_transfer_at
from user_wallets as w
cross join (select distinct chain_id from master_contracts) as chains
join master_nfts as n
    on n.chain_id = chains.chain_id
    and n.owner_address = w.address
where w.user_id = $1
    and not n.is_burned
    and (n.chain_id, n.contract_address, n.token_id)
        > ($2::bigint, decode(substr($3, 3), 'hex'), $4::text::numeric)
order by n.chain_id, n.contract_address, n.token_id
limit $5::integer;
