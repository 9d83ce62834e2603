drop table vstudio_votes;
drop table vstudio_participants;
drop table vstudio_decision_points;
drop table vstudio_sessions;
