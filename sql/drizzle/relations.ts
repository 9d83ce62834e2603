import { relations } from "drizzle-orm/relations";
import { users, artists, accounts, identityProviders, paymentMethods, paymentProviders, securityEvents, producers, userWallets, masters, masterCollaborators, masterIpos, revenueEvents, vstudioSessions, vstudioDecisionPoints, vstudioVotes, subscriptions, invoices, paymentTransactions, artistFollows, userRoles, roles, vstudioParticipants } from "./schema";

export const artistsRelations = relations(artists, ({one, many}) => ({
	user: one(users, {
		fields: [artists.userId],
		references: [users.id]
	}),
	masters: many(masters),
	vstudioSessions: many(vstudioSessions),
	artistFollows: many(artistFollows),
}));

export const usersRelations = relations(users, ({many}) => ({
	artists: many(artists),
	accounts: many(accounts),
	paymentMethods: many(paymentMethods),
	securityEvents_userId: many(securityEvents, {
		relationName: "securityEvents_userId_users_id"
	}),
	securityEvents_resolvedBy: many(securityEvents, {
		relationName: "securityEvents_resolvedBy_users_id"
	}),
	producers: many(producers),
	userWallets: many(userWallets),
	masterCollaborators: many(masterCollaborators),
	masterIpos: many(masterIpos),
	revenueEvents: many(revenueEvents),
	vstudioVotes: many(vstudioVotes),
	subscriptions: many(subscriptions),
	invoices: many(invoices),
	paymentTransactions: many(paymentTransactions),
	artistFollows: many(artistFollows),
	userRoles_userId: many(userRoles, {
		relationName: "userRoles_userId_users_id"
	}),
	userRoles_grantedBy: many(userRoles, {
		relationName: "userRoles_grantedBy_users_id"
	}),
	vstudioParticipants: many(vstudioParticipants),
}));

export const accountsRelations = relations(accounts, ({one}) => ({
	user: one(users, {
		fields: [accounts.userId],
		references: [users.id]
	}),
	identityProvider: one(identityProviders, {
		fields: [accounts.identityProviderId],
		references: [identityProviders.id]
	}),
}));

export const identityProvidersRelations = relations(identityProviders, ({many}) => ({
	accounts: many(accounts),
}));

export const paymentMethodsRelations = relations(paymentMethods, ({one, many}) => ({
	user: one(users, {
		fields: [paymentMethods.userId],
		references: [users.id]
	}),
	paymentProvider: one(paymentProviders, {
		fields: [paymentMethods.paymentProviderId],
		references: [paymentProviders.id]
	}),
	paymentTransactions: many(paymentTransactions),
}));

export const paymentProvidersRelations = relations(paymentProviders, ({many}) => ({
	paymentMethods: many(paymentMethods),
	subscriptions: many(subscriptions),
	invoices: many(invoices),
	paymentTransactions: many(paymentTransactions),
}));

export const securityEventsRelations = relations(securityEvents, ({one}) => ({
	user_userId: one(users, {
		fields: [securityEvents.userId],
		references: [users.id],
		relationName: "securityEvents_userId_users_id"
	}),
	user_resolvedBy: one(users, {
		fields: [securityEvents.resolvedBy],
		references: [users.id],
		relationName: "securityEvents_resolvedBy_users_id"
	}),
}));

export const producersRelations = relations(producers, ({one, many}) => ({
	user: one(users, {
		fields: [producers.userId],
		references: [users.id]
	}),
	masters: many(masters),
}));

export const userWalletsRelations = relations(userWallets, ({one}) => ({
	user: one(users, {
		fields: [userWallets.userId],
		references: [users.id]
	}),
}));

export const mastersRelations = relations(masters, ({one, many}) => ({
	producer: one(producers, {
		fields: [masters.producerId],
		references: [producers.id]
	}),
	artist: one(artists, {
		fields: [masters.artistId],
		references: [artists.id]
	}),
	masterCollaborators: many(masterCollaborators),
	masterIpos: many(masterIpos),
	revenueEvents: many(revenueEvents),
	vstudioSessions: many(vstudioSessions),
}));

export const masterCollaboratorsRelations = relations(masterCollaborators, ({one}) => ({
	master: one(masters, {
		fields: [masterCollaborators.masterId],
		references: [masters.id]
	}),
	user: one(users, {
		fields: [masterCollaborators.userId],
		references: [users.id]
	}),
}));

export const masterIposRelations = relations(masterIpos, ({one}) => ({
	master: one(masters, {
		fields: [masterIpos.masterId],
		references: [masters.id]
	}),
	user: one(users, {
		fields: [masterIpos.createdBy],
		references: [users.id]
	}),
}));

export const revenueEventsRelations = relations(revenueEvents, ({one}) => ({
	master: one(masters, {
		fields: [revenueEvents.masterId],
		references: [masters.id]
	}),
	user: one(users, {
		fields: [revenueEvents.verifiedBy],
		references: [users.id]
	}),
}));

export const vstudioSessionsRelations = relations(vstudioSessions, ({one, many}) => ({
	artist: one(artists, {
		fields: [vstudioSessions.artistId],
		references: [artists.id]
	}),
	master: one(masters, {
		fields: [vstudioSessions.masterId],
		references: [masters.id]
	}),
	vstudioDecisionPoints: many(vstudioDecisionPoints),
	vstudioParticipants: many(vstudioParticipants),
}));

export const vstudioDecisionPointsRelations = relations(vstudioDecisionPoints, ({one, many}) => ({
	vstudioSession: one(vstudioSessions, {
		fields: [vstudioDecisionPoints.vstudioSessionId],
		references: [vstudioSessions.id]
	}),
	vstudioVotes: many(vstudioVotes),
}));

export const vstudioVotesRelations = relations(vstudioVotes, ({one}) => ({
	user: one(users, {
		fields: [vstudioVotes.userId],
		references: [users.id]
	}),
	vstudioDecisionPoint: one(vstudioDecisionPoints, {
		fields: [vstudioVotes.decisionPointId],
		references: [vstudioDecisionPoints.id]
	}),
}));

export const subscriptionsRelations = relations(subscriptions, ({one, many}) => ({
	user: one(users, {
		fields: [subscriptions.userId],
		references: [users.id]
	}),
	paymentProvider: one(paymentProviders, {
		fields: [subscriptions.paymentProviderId],
		references: [paymentProviders.id]
	}),
	invoices: many(invoices),
}));

export const invoicesRelations = relations(invoices, ({one, many}) => ({
	user: one(users, {
		fields: [invoices.userId],
		references: [users.id]
	}),
	subscription: one(subscriptions, {
		fields: [invoices.subscriptionId],
		references: [subscriptions.id]
	}),
	paymentProvider: one(paymentProviders, {
		fields: [invoices.paymentProviderId],
		references: [paymentProviders.id]
	}),
	paymentTransactions: many(paymentTransactions),
}));

export const paymentTransactionsRelations = relations(paymentTransactions, ({one}) => ({
	user: one(users, {
		fields: [paymentTransactions.userId],
		references: [users.id]
	}),
	invoice: one(invoices, {
		fields: [paymentTransactions.invoiceId],
		references: [invoices.id]
	}),
	paymentProvider: one(paymentProviders, {
		fields: [paymentTransactions.paymentProviderId],
		references: [paymentProviders.id]
	}),
	paymentMethod: one(paymentMethods, {
		fields: [paymentTransactions.paymentMethodId],
		references: [paymentMethods.id]
	}),
}));

export const artistFollowsRelations = relations(artistFollows, ({one}) => ({
	user: one(users, {
		fields: [artistFollows.userId],
		references: [users.id]
	}),
	artist: one(artists, {
		fields: [artistFollows.artistId],
		references: [artists.id]
	}),
}));

export const userRolesRelations = relations(userRoles, ({one}) => ({
	user_userId: one(users, {
		fields: [userRoles.userId],
		references: [users.id],
		relationName: "userRoles_userId_users_id"
	}),
	role: one(roles, {
		fields: [userRoles.roleId],
		references: [roles.id]
	}),
	user_grantedBy: one(users, {
		fields: [userRoles.grantedBy],
		references: [users.id],
		relationName: "userRoles_grantedBy_users_id"
	}),
}));

export const rolesRelations = relations(roles, ({many}) => ({
	userRoles: many(userRoles),
}));

export const vstudioParticipantsRelations = relations(vstudioParticipants, ({one}) => ({
	vstudioSession: one(vstudioSessions, {
		fields: [vstudioParticipants.vstudioSessionId],
		references: [vstudioSessions.id]
	}),
	user: one(users, {
		fields: [vstudioParticipants.userId],
		references: [users.id]
	}),
}));