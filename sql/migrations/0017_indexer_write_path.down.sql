alter table token_holders reset (fillfactor);

drop trigger master_nfts_set_updated_at on master_nfts;
create trigger master_nfts_set_updated_at before update on master_nfts
    for each row execute function set_updated_at();

drop trigger token_holders_set_updated_at on token_holders;
create trigger token_holders_set_updated_at before update on token_holders
    for each row execute function set_updated_at();

drop trigger master_contracts_set_updated_at on master_contracts;
create trigger master_contracts_set_updated_at before update on master_contracts
    for each row execute function set_updated_at();

drop trigger artist_tokens_set_updated_at on artist_tokens;
create trigger artist_tokens_set_updated_at before update on artist_tokens
    for each row execute function set_updated_at();

drop trigger dividend_totals_set_updated_at on dividend_totals;
create trigger dividend_totals_set_updated_at before update on dividend_totals
    for each row execute function set_updated_at();

drop trigger dividend_holder_totals_set_updated_at on dividend_holder_totals;
create trigger dividend_holder_totals_set_updated_at before update on dividend_holder_totals
    for each row execute function set_updated_at();
