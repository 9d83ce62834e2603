-- name: wallet_dividends
-- endpoint: GET /me/portfolio
-- params: $1 user_id uuid
-- budget_ms: 60
-- The user's dividends, one row per (chain, master, distributor, payment token): what the
-- user's wallets have claimed so far (the DividendClaimed credited to them) and what they
-- can claim now. Semantics of contracts/DividendDistributor.sol: a deposit fixes
-- amount_per_share; each token id can claim it once per dividend, credited to the token's
-- owner at claim time. So claimable = the sum, over the wallets' live NFTs of the master
-- and the distributor's dividends not yet claimed for that token id, of amount_per_share.
-- That anti-join (live NFTs x dividends, minus dividend_claims) is computed by counting,
-- which is the same number: per dividend, amount_per_share x (the wallets' live NFTs of
-- the master - those of them already claimed for it). It visits the wallets' NFTs and
-- their claims once (dividend_claims_token_idx: chain_id, distributor_address, token_id,
-- dividend_id, index-only), not NFTs x dividends (168k pairs, 300 ms, for a whale with
-- 5,000 NFTs). live is materialized so that each probe gets all three key columns from
-- one row. Claims are unique per (distributor, dividend, token id) on chain. NFT contract
-- -> distributor through master_contracts; payment_token 0x00..00 is the native coin.
-- Rows where both amounts are 0 are left out; the list is bounded by the masters.
with
wallets as (
    select w.address
    from user_wallets as w
    where w.user_id = $1
),
chains as (
    select distinct chain_id from master_contracts
),
live as materialized (
    select c.chain_id, c.distributor_address, n.token_id
    from wallets as w
    cross join chains
    join master_nfts as n
        on n.chain_id = chains.chain_id
        and n.owner_address = w.address
    join master_contracts as c
        on c.chain_id = n.chain_id
        and c.nft_address = n.contract_address
    where not n.is_burned
),
shares as (
    select l.chain_id, l.distributor_address, count(*) as nfts
    from live as l
    group by l.chain_id, l.distributor_address
),
already as (
    select k.chain_id, k.distributor_address, k.dividend_id, count(*) as nfts
    from live as l
    join dividend_claims as k
        on k.chain_id = l.chain_id
        and k.distributor_address = l.distributor_address
        and k.token_id = l.token_id
    group by k.chain_id, k.distributor_address, k.dividend_id
),
claimable as (
    select s.chain_id, s.distributor_address, d.token_address,
        sum(d.amount_per_share * (s.nfts - coalesce(a.nfts, 0))) as amount
    from shares as s
    join dividend_events as d
        on d.chain_id = s.chain_id
        and d.distributor_address = s.distributor_address
    left join already as a
        on a.chain_id = d.chain_id
        and a.distributor_address = d.distributor_address
        and a.dividend_id = d.dividend_id
    group by s.chain_id, s.distributor_address, d.token_address
),
claimed_per_dividend as (
    select k.chain_id, k.distributor_address, k.dividend_id, sum(k.amount) as amount
    from wallets as w
    cross join chains
    join dividend_claims as k
        on k.chain_id = chains.chain_id
        and k.holder_address = w.address
    group by k.chain_id, k.distributor_address, k.dividend_id
),
claimed as (
    select b.chain_id, b.distributor_address, d.token_address, sum(b.amount) as amount
    from claimed_per_dividend as b
    join dividend_events as d
        on d.chain_id = b.chain_id
        and d.distributor_address = b.distributor_address
        and d.dividend_id = b.dividend_id
    group by b.chain_id, b.distributor_address, d.token_address
)
select
    t.chain_id,
    c.master_id,
    '0x' || encode(t.distributor_address, 'hex') as distributor,
    '0x' || encode(t.token_address, 'hex') as payment_token,
    t.claimed::text as claimed,
    t.claimable::text as claimable
from (
    select
        chain_id,
        distributor_address,
        token_address,
        coalesce(b.amount, 0) as claimed,
        coalesce(a.amount, 0) as claimable
    from claimable as a
    full join claimed as b
        using (chain_id, distributor_address, token_address)
) as t
join master_contracts as c
    on c.chain_id = t.chain_id
    and c.distributor_address = t.distributor_address
where t.claimed > 0 or t.claimable > 0
order by t.chain_id, c.master_id, t.distributor_address, t.token_address;
