drop table artist_follows;
drop table producers;
drop table artists;
