drop table master_nfts;
drop table nft_transfers;
