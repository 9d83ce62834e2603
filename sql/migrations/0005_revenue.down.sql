drop table dividend_holder_totals;
drop table dividend_totals;
drop table dividend_claims;
drop table dividend_events;
drop table revenue_events;
