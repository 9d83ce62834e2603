drop materialized view master_ipo_stats;
drop materialized view artist_performance;
