-- name: master_holders
-- endpoint: GET /masters/:id/holders
-- params: $1 master_id uuid, $2 limit int
-- budget_ms: 25
-- A master's NFT holders: per chain and NFT contract of the master (master_contracts),
-- each owner of live (not burned) NFTs and how many they hold, largest first (ties by
-- chain and owner, so pages are stable), at most $2 rows.
-- Served by master_nfts_live_owner_idx (chain_id, contract_address, owner_address) where
-- not is_burned: an index-only scan in owner order. Finding the top owners means counting
-- every live NFT of the master (26k for the biggest synthetic one);
-- the addresses are encoded after the limit, not for every owner.
select
    t.chain_id,
    '0x' || encode(t.contract_address, 'hex') as contract,
    '0x' || encode(t.owner_address, 'hex') as owner,
    t.nfts_held
from (
    select n.chain_id, n.contract_address, n.owner_address, count(*)::integer as nfts_held
    from master_contracts as c
    join master_nfts as n
        on n.chain_id = c.chain_id
        and n.contract_address = c.nft_address
    where c.master_id = $1
        and not n.is_burned
    group by n.chain_id, n.contract_address, n.owner_address
    order by nfts_held desc, n.chain_id, n.owner_address
    limit $2::integer
) as t
order by t.nfts_held desc, t.chain_id, t.owner_address;
