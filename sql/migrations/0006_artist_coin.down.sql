drop table token_holders;
drop table token_transfers;
drop table artist_tokens;
