drop materialized view artist_coin_stats;
drop materialized view master_chain_stats;
