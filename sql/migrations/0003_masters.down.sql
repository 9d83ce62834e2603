drop function sync_master_ipo_minted_supply(uuid[]);
drop table master_ipos;
drop function master_ipos_fill_minted_supply();
drop function lock_master_minted_supply(uuid);
drop table master_contracts;
drop table master_collaborators;
drop table masters;
