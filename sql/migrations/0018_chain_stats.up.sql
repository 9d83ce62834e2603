-- Dashboards per chain (AudiFi runs on several chains in one database). The views of
-- 0011 add a master's or an artist's figures up over every chain; these two give each
-- chain's own, one row per contract, named by chain_id. Refreshed like the others
-- (`refresh materialized view concurrently`, by the owner): no row-level security is
-- involved, they read only the indexer's tables.

create materialized view master_chain_stats as
with
nfts as (
    select
        chain_id,
        contract_address,
        count(*) filter (where not is_burned) as nfts_outstanding,
        count(distinct owner_address) filter (where not is_burned) as holders_count
    from master_nfts
    group by chain_id, contract_address
),
transfers as (
    select chain_id, contract_address, count(*) as transfers_count, max(block_number) as last_block
    from nft_transfers
    group by chain_id, contract_address
),
deposits as (
    select chain_id, distributor_address, count(*) as dividends_count
    from dividend_events
    group by chain_id, distributor_address
),
claims as (
    select chain_id, distributor_address, sum(claims_count) as claims_count
    from dividend_totals
    group by chain_id, distributor_address
)
select
    c.chain_id,
    c.master_id,
    c.nft_address,
    c.distributor_address,
    c.total_supply,
    c.minted_supply,
    c.burned_supply,
    coalesce(n.nfts_outstanding, 0) as nfts_outstanding,
    coalesce(n.holders_count, 0) as holders_count,
    coalesce(t.transfers_count, 0) as transfers_count,
    t.last_block as last_transfer_block,
    coalesce(d.dividends_count, 0) as dividends_count,
    coalesce(cl.claims_count, 0) as dividend_claims_count
from master_contracts as c
left join nfts as n on n.chain_id = c.chain_id and n.contract_address = c.nft_address
left join transfers as t on t.chain_id = c.chain_id and t.contract_address = c.nft_address
left join deposits as d
    on d.chain_id = c.chain_id and d.distributor_address = c.distributor_address
left join claims as cl
    on cl.chain_id = c.chain_id and cl.distributor_address = c.distributor_address;

create unique index master_chain_stats_key on master_chain_stats (chain_id, nft_address);
create index master_chain_stats_master_id_idx on master_chain_stats (master_id);

create materialized view artist_coin_stats as
with
holders as (
    select chain_id, token_address, count(*) as holders_count
    from token_holders
    where balance > 0
    group by chain_id, token_address
),
transfers as (
    select chain_id, token_address, count(*) as transfers_count, max(block_number) as last_block
    from token_transfers
    group by chain_id, token_address
)
select
    a.chain_id,
    a.artist_id,
    a.token_address,
    a.symbol,
    a.decimals,
    a.total_supply,
    coalesce(h.holders_count, 0) as holders_count,
    coalesce(t.transfers_count, 0) as transfers_count,
    t.last_block as last_transfer_block
from artist_tokens as a
left join holders as h on h.chain_id = a.chain_id and h.token_address = a.token_address
left join transfers as t on t.chain_id = a.chain_id and t.token_address = a.token_address;

create unique index artist_coin_stats_key on artist_coin_stats (chain_id, token_address);
create index artist_coin_stats_artist_id_idx on artist_coin_stats (artist_id);

grant select on master_chain_stats, artist_coin_stats to audifi_backend, audifi_analytics;
alter materialized view master_chain_stats owner to audifi_owner;
alter materialized view artist_coin_stats owner to audifi_owner;
