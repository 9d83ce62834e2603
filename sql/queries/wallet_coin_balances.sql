-- name: wallet_coin_balances
-- endpoint: GET /me/portfolio
-- params: $1 user_id uuid, $2 limit int
-- budget_ms: 5
-- The user's wallets' ArtistCoin balances above zero, one row per (chain, token, wallet),
-- with the coin's symbol, decimals and on-chain artist id. `balance` is the raw uint256
-- in the token's smallest unit (scale it by `decimals` for display).
-- As in wallet_nfts, the wallets are crossed with the chains (artist_tokens) so that
-- token_holders_holder_idx (chain_id, holder_address) is probed on both columns.
select
    h.chain_id,
    '0x' || encode(h.token_address, 'hex') as token,
    t.symbol,
    t.decimals,
    t.artist_id,
    '0x' || encode(h.holder_address, 'hex') as holder,
    h.balance::text as balance
from user_wallets as w
cross join (select distinct chain_id from artist_tokens) as chains
join token_holders as h
    on h.chain_id = chains.chain_id
    and h.holder_address = w.address
join artist_tokens as t
    on t.chain_id = h.chain_id
    and t.token_address = h.token_address
where w.user_id = $1
    and h.balance > 0
order by h.chain_id, t.symbol, h.token_address, h.holder_address
limit $2::integer;
