-- name: marketplace_listing
-- endpoint: GET /marketplace
-- params: $1 after_created_at text, $2 after_id uuid, $3 limit int
-- budget_ms: 25
-- The marketplace page: published masters, newest first, with the artist's public name,
-- the open IPO (not cancelled; at most one per master) and the ownership join: per
-- on-chain deployment of the master its contracts, minted/burned supply and distinct
-- holders. One row per (master, deployment); a master not deployed yet has one row with
-- null chain columns. $3 counts masters, not rows. Keyset pagination on
-- (created_at, master_id): pass the last row's created_at (text, UTC, microseconds, as
-- returned) and master_id; the first page is $1 = 'infinity',
-- $2 = 'ffffffff-ffff-ffff-ffff-ffffffffffff'.
-- masters has row-level security: the role that runs this for public pages needs
-- BYPASSRLS, to own the table, or a policy of its own (e.g. for select using
-- (status = 'published')); without one it sees no master at all.
with page as (
    select m.id, m.artist_id, m.title, m.genre, m.cover_image_url, m.created_at
    from masters as m
    where m.status = 'published'
        and (m.created_at, m.id) < ($1::text::timestamptz, $2::uuid)
    order by m.created_at desc, m.id desc
    limit $3::integer
)
select
    p.id as master_id,
    p.title,
    p.genre,
    p.cover_image_url,
    to_char(p.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at,
    a.id as artist_id,
    a.artist_name,
    a.slug as artist_slug,
    i.id as ipo_id,
    i.status as ipo_status,
    i.mint_price::text as ipo_mint_price,
    '0x' || encode(i.payment_token_address, 'hex') as ipo_payment_token,
    i.total_supply::text as ipo_total_supply,
    i.minted_supply::text as ipo_minted_supply,
    c.chain_id,
    '0x' || encode(c.nft_address, 'hex') as nft_contract,
    '0x' || encode(c.distributor_address, 'hex') as distributor,
    c.total_supply::text as total_supply,
    c.minted_supply::text as minted,
    c.burned_supply::text as burned,
    h.holders
from page as p
join artists as a
    on a.id = p.artist_id
left join master_ipos as i
    on i.master_id = p.id
    and i.status <> 'cancelled'
left join master_contracts as c
    on c.master_id = p.id
left join lateral (
    select count(distinct n.owner_address)::integer as holders
    from master_nfts as n
    where n.chain_id = c.chain_id
        and n.contract_address = c.nft_address
        and not n.is_burned
) as h on c.chain_id is not null
order by p.created_at desc, p.id desc, c.chain_id, c.nft_address;
