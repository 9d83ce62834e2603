drop table user_roles;
drop table roles;
drop table user_wallets;
drop table accounts;
drop table identity_providers;
drop table users;
drop function set_updated_at();
