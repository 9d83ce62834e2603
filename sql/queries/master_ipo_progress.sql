-- name: master_ipo_progress
-- endpoint: GET /masters/:id
-- params: $1 master_id uuid
-- budget_ms: 15
-- A master's IPO progress: one row per on-chain deployment of the master (usually one;
-- several chains may each have one), with the contract's total, minted and burned supply,
-- the NFTs outstanding and their distinct holders, and the master's IPO row: the open
-- one (not cancelled) if any, else the latest cancelled one, else nulls (left join).
-- ipo_minted_supply is the backend's copy (the sum over chains, kept by the indexer).
-- No row when the factory has not deployed the master yet.
select
    c.chain_id,
    c.master_id,
    '0x' || encode(c.nft_address, 'hex') as nft_contract,
    '0x' || encode(c.distributor_address, 'hex') as distributor,
    c.total_supply::text as total_supply,
    c.minted_supply::text as minted,
    c.burned_supply::text as burned,
    (c.minted_supply - c.burned_supply)::text as outstanding,
    (
        select count(distinct n.owner_address)::integer
        from master_nfts as n
        where n.chain_id = c.chain_id
            and n.contract_address = c.nft_address
            and not n.is_burned
    ) as holders,
    i.id as ipo_id,
    i.status as ipo_status,
    i.total_supply::text as ipo_total_supply,
    i.minted_supply::text as ipo_minted_supply
from master_contracts as c
left join lateral (
    select o.id, o.status, o.total_supply, o.minted_supply
    from master_ipos as o
    where o.master_id = c.master_id
    order by o.status = 'cancelled', o.created_at desc
    limit 1
) as i on true
where c.master_id = $1
order by c.chain_id, c.nft_address;
