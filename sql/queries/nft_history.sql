-- name: nft_history
-- endpoint: GET /nfts/:chain/:contract/:tokenId
-- params: $1 chain_id bigint, $2 contract text, $3 token_id text, $4 after_block bigint, $5 after_log_index int, $6 limit int
-- budget_ms: 5
-- One NFT's transfers (mint, transfers, burn) in chain order (block_number, log_index),
-- with the transaction and the block's timestamp. `kind` is mint (from the zero
-- address), burn (to it) or transfer. Keyset pagination: pass the last row's
-- (block_number, log_index) as $4, $5; the first page is $4 = -1, $5 = -1.
-- One range scan of nft_transfers_token_history_idx
-- (chain_id, contract_address, token_id, block_number, log_index).
select
    t.chain_id,
    '0x' || encode(t.contract_address, 'hex') as contract,
    t.token_id::text as token_id,
    t.block_number,
    t.log_index,
    t.block_timestamp,
    '0x' || encode(t.tx_hash, 'hex') as tx_hash,
    '0x' || encode(t.from_address, 'hex') as from_address,
    '0x' || encode(t.to_address, 'hex') as to_address,
    case
        when t.from_address = '\x0000000000000000000000000000000000000000'::bytea then 'mint'
        when t.to_address = '\x0000000000000000000000000000000000000000'::bytea then 'burn'
        else 'transfer'
    end as kind
from nft_transfers as t
where t.chain_id = $1
    and t.contract_address = decode(substr($2, 3), 'hex')
    and t.token_id = $3::text::numeric
    and (t.block_number, t.log_index) > ($4::bigint, $5::integer)
order by t.block_number, t.log_index
limit $6::integer;
