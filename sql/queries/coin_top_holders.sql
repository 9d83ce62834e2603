-- name: coin_top_holders
-- endpoint: GET /coins/:chain/:token/holders
-- params: $1 chain_id bigint, $2 token text, $3 limit int
-- budget_ms: 5
-- An ArtistCoin's largest holders (balance above zero), largest first, ties by address,
-- at most $3 rows; `balance` is the raw uint256 as text. Read from the top of
-- token_holders_top_idx (chain_id, token_address, balance desc, holder_address) where
-- balance > 0: no sort, $3 index entries.
select
    h.chain_id,
    '0x' || encode(h.token_address, 'hex') as token,
    '0x' || encode(h.holder_address, 'hex') as holder,
    h.balance::text as balance,
    h.updated_block
from token_holders as h
where h.chain_id = $1
    and h.token_address = decode(substr($2, 3), 'hex')
    and h.balance > 0
order by h.balance desc, h.holder_address
limit $3::integer;
