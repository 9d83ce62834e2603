-- Dashboards (database-stack §3.1): pre-aggregated, refreshed on demand or on a
-- schedule with `refresh materialized view concurrently`, which needs the
-- unique index on each and lets readers keep reading during the refresh.
-- Refresh them as the owner of masters: row-level security would otherwise
-- hide masters from the refresh.

create materialized view artist_performance as
with
masters_per_artist as (
    select
        artist_id,
        count(*) as masters_count,
        count(*) filter (where status = 'published') as published_masters_count
    from masters
    group by artist_id
),
ipos_per_artist as (
    select
        m.artist_id,
        count(*) filter (where i.status = 'live') as live_ipos_count,
        count(*) filter (where i.status = 'completed') as completed_ipos_count,
        sum(i.minted_supply) as nfts_minted
    from master_ipos as i
    join masters as m on m.id = i.master_id
    group by m.artist_id
),
nft_holders_per_artist as (
    select
        m.artist_id,
        count(distinct (n.chain_id, n.owner_address)) as nft_holders_count
    from master_nfts as n
    join masters as m on m.id = n.master_id
    where not n.is_burned
    group by m.artist_id
),
followers_per_artist as (
    select artist_id, count(*) as followers_count
    from artist_follows
    group by artist_id
),
coin_holders_per_artist as (
    select t.artist_id, count(*) as coin_holders_count
    from artist_tokens as t
    join token_holders as h on h.chain_id = t.chain_id and h.token_address = t.token_address
    where h.balance > 0
    group by t.artist_id
),
revenue_per_currency as (
    select m.artist_id, r.currency, sum(r.amount) as amount
    from revenue_events as r
    join masters as m on m.id = r.master_id
    where r.status in ('verified', 'distributed')
    group by m.artist_id, r.currency
),
revenue_per_artist as (
    select artist_id, jsonb_object_agg(currency, amount) as revenue_by_currency
    from revenue_per_currency
    group by artist_id
)
select
    a.id as artist_id,
    a.artist_name,
    a.slug,
    a.is_verified,
    coalesce(m.masters_count, 0) as masters_count,
    coalesce(m.published_masters_count, 0) as published_masters_count,
    coalesce(i.live_ipos_count, 0) as live_ipos_count,
    coalesce(i.completed_ipos_count, 0) as completed_ipos_count,
    coalesce(i.nfts_minted, 0) as nfts_minted,
    coalesce(n.nft_holders_count, 0) as nft_holders_count,
    coalesce(f.followers_count, 0) as followers_count,
    coalesce(c.coin_holders_count, 0) as coin_holders_count,
    coalesce(r.revenue_by_currency, '{}') as revenue_by_currency
from artists as a
left join masters_per_artist as m on m.artist_id = a.id
left join ipos_per_artist as i on i.artist_id = a.id
left join nft_holders_per_artist as n on n.artist_id = a.id
left join followers_per_artist as f on f.artist_id = a.id
left join coin_holders_per_artist as c on c.artist_id = a.id
left join revenue_per_artist as r on r.artist_id = a.id;

create unique index artist_performance_artist_id_key on artist_performance (artist_id);
create index artist_performance_followers_count_idx on artist_performance (followers_count desc);

create materialized view master_ipo_stats as
with
nfts_per_master as (
    select
        master_id,
        count(*) filter (where not is_burned) as nfts_outstanding,
        count(distinct (chain_id, owner_address)) filter (where not is_burned) as holders_count
    from master_nfts
    group by master_id
),
transfers_per_master as (
    select c.master_id, count(*) as transfers_count
    from nft_transfers as t
    join master_contracts as c on c.chain_id = t.chain_id and c.nft_address = t.contract_address
    group by c.master_id
),
deposits_per_token as (
    select
        c.master_id,
        '0x' || encode(d.token_address, 'hex') as token,
        count(*) as dividends_count,
        sum(d.amount) as amount
    from dividend_events as d
    join master_contracts as c
        on c.chain_id = d.chain_id and c.distributor_address = d.distributor_address
    group by c.master_id, d.token_address
),
deposits_per_master as (
    select
        master_id,
        sum(dividends_count) as dividends_count,
        jsonb_object_agg(token, amount) as dividends_deposited
    from deposits_per_token
    group by master_id
),
claims_per_master as (
    select c.master_id, sum(t.claims_count) as dividend_claims_count
    from dividend_totals as t
    join master_contracts as c
        on c.chain_id = t.chain_id and c.distributor_address = t.distributor_address
    group by c.master_id
)
select
    i.id as ipo_id,
    i.master_id,
    m.artist_id,
    i.status,
    i.total_supply,
    i.minted_supply,
    floor(i.minted_supply * 10000 / nullif(i.total_supply, 0)) as minted_bps,
    i.actual_start_at,
    i.actual_end_at,
    coalesce(n.nfts_outstanding, 0) as nfts_outstanding,
    coalesce(n.holders_count, 0) as holders_count,
    coalesce(t.transfers_count, 0) as transfers_count,
    coalesce(d.dividends_count, 0) as dividends_count,
    coalesce(d.dividends_deposited, '{}') as dividends_deposited,
    coalesce(c.dividend_claims_count, 0) as dividend_claims_count
from master_ipos as i
join masters as m on m.id = i.master_id
left join nfts_per_master as n on n.master_id = i.master_id
left join transfers_per_master as t on t.master_id = i.master_id
left join deposits_per_master as d on d.master_id = i.master_id
left join claims_per_master as c on c.master_id = i.master_id;

create unique index master_ipo_stats_ipo_id_key on master_ipo_stats (ipo_id);
create index master_ipo_stats_master_id_idx on master_ipo_stats (master_id);
create index master_ipo_stats_artist_id_idx on master_ipo_stats (artist_id);
create index master_ipo_stats_status_idx on master_ipo_stats (status);
