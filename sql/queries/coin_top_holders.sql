-- name: coin_top_holders
-- endpoint: GET /coins/:chain/:token/holders
-- params: $1 chain_id bigint, $2 token text, $3 limit int
-- budget_ms: 25
-- An ArtistCoin's largest holders (balance above zero), largest first, ties by address,
-- at most $3 rows; `balance` is the raw uint256 as text. One range of the primary key
-- (chain_id, token_address, holder_address) and a top-N sort of the coin's holders: no
-- index on balance, which would cost the indexer a non-HOT update per balance change.
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
