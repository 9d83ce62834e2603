import { pgTable, index, foreignKey, unique, check, uuid, text, jsonb, boolean, timestamp, integer, uniqueIndex, smallint, inet, bigint, numeric, bigserial, pgPolicy, date, primaryKey, pgMaterializedView } from "drizzle-orm/pg-core"
import { sql } from "drizzle-orm"
import { bytea } from "./types"



export const accounts = pgTable("accounts", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id").notNull(),
	identityProviderId: uuid("identity_provider_id").notNull(),
	providerAccountId: text("provider_account_id").notNull(),
	accessToken: bytea("access_token"),
	refreshToken: bytea("refresh_token"),
	expiresAt: timestamp("expires_at", { withTimezone: true, mode: 'string' }),
	scope: text(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("accounts_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "accounts_user_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.identityProviderId],
			foreignColumns: [identityProviders.id],
			name: "accounts_identity_provider_id_fkey"
		}),
	unique("accounts_identity_provider_id_provider_account_id_key").on(table.identityProviderId, table.providerAccountId),
]);

export const artistCoinStats = pgMaterializedView("artist_coin_stats", {	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }),
	artistId: uuid("artist_id"),
	tokenAddress: bytea("token_address"),
	symbol: text(),
	decimals: smallint(),
	totalSupply: numeric("total_supply", { precision: 78, scale:  0 }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	holdersCount: bigint("holders_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	transfersCount: bigint("transfers_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	lastTransferBlock: bigint("last_transfer_block", { mode: "number" }),
}).as(sql`WITH holders AS ( SELECT token_holders.chain_id, token_holders.token_address, count(*) AS holders_count FROM token_holders WHERE token_holders.balance > 0::numeric GROUP BY token_holders.chain_id, token_holders.token_address ), transfers AS ( SELECT token_transfers.chain_id, token_transfers.token_address, count(*) AS transfers_count, max(token_transfers.block_number) AS last_block FROM token_transfers GROUP BY token_transfers.chain_id, token_transfers.token_address ) SELECT a.chain_id, a.artist_id, a.token_address, a.symbol, a.decimals, a.total_supply, COALESCE(h.holders_count, 0::bigint) AS holders_count, COALESCE(t.transfers_count, 0::bigint) AS transfers_count, t.last_block AS last_transfer_block FROM artist_tokens a LEFT JOIN holders h ON h.chain_id = a.chain_id AND h.token_address = a.token_address LEFT JOIN transfers t ON t.chain_id = a.chain_id AND t.token_address = a.token_address`);

export const artistFollows = pgTable("artist_follows", {
	userId: uuid("user_id").notNull(),
	artistId: uuid("artist_id").notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("artist_follows_artist_id_created_at_idx").using("btree", table.artistId.asc().nullsLast().op("timestamptz_ops"), table.createdAt.desc().nullsFirst().op("timestamptz_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "artist_follows_user_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.artistId],
			foreignColumns: [artists.id],
			name: "artist_follows_artist_id_fkey"
		}).onDelete("cascade"),
	primaryKey({ columns: [table.userId, table.artistId], name: "artist_follows_pkey"}),
]);

export const artistPerformance = pgMaterializedView("artist_performance", {	artistId: uuid("artist_id"),
	artistName: text("artist_name"),
	slug: text(),
	isVerified: boolean("is_verified"),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	mastersCount: bigint("masters_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	publishedMastersCount: bigint("published_masters_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	liveIposCount: bigint("live_ipos_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	completedIposCount: bigint("completed_ipos_count", { mode: "number" }),
	nftsMinted: numeric("nfts_minted"),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	nftHoldersCount: bigint("nft_holders_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	followersCount: bigint("followers_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	coinHoldersCount: bigint("coin_holders_count", { mode: "number" }),
	revenueByCurrency: jsonb("revenue_by_currency"),
}).as(sql`WITH masters_per_artist AS ( SELECT masters.artist_id, count(*) AS masters_count, count(*) FILTER (WHERE masters.status = 'published'::text) AS published_masters_count FROM masters GROUP BY masters.artist_id ), ipos_per_artist AS ( SELECT m_1.artist_id, count(*) FILTER (WHERE i_1.status = 'live'::text) AS live_ipos_count, count(*) FILTER (WHERE i_1.status = 'completed'::text) AS completed_ipos_count, sum(i_1.minted_supply) AS nfts_minted FROM master_ipos i_1 JOIN masters m_1 ON m_1.id = i_1.master_id GROUP BY m_1.artist_id ), nft_holders_per_artist AS ( SELECT m_1.artist_id, count(DISTINCT ROW(n_1.chain_id, n_1.owner_address)) AS nft_holders_count FROM master_nfts n_1 JOIN masters m_1 ON m_1.id = n_1.master_id WHERE NOT n_1.is_burned GROUP BY m_1.artist_id ), followers_per_artist AS ( SELECT artist_follows.artist_id, count(*) AS followers_count FROM artist_follows GROUP BY artist_follows.artist_id ), coin_holders_per_artist AS ( SELECT t.artist_id, count(*) AS coin_holders_count FROM artist_tokens t JOIN token_holders h ON h.chain_id = t.chain_id AND h.token_address = t.token_address WHERE h.balance > 0::numeric GROUP BY t.artist_id ), revenue_per_currency AS ( SELECT m_1.artist_id, r_1.currency, sum(r_1.amount) AS amount FROM revenue_events r_1 JOIN masters m_1 ON m_1.id = r_1.master_id WHERE r_1.status = ANY (ARRAY['verified'::text, 'distributed'::text]) GROUP BY m_1.artist_id, r_1.currency ), revenue_per_artist AS ( SELECT revenue_per_currency.artist_id, jsonb_object_agg(revenue_per_currency.currency, revenue_per_currency.amount) AS revenue_by_currency FROM revenue_per_currency GROUP BY revenue_per_currency.artist_id ) SELECT a.id AS artist_id, a.artist_name, a.slug, a.is_verified, COALESCE(m.masters_count, 0::bigint) AS masters_count, COALESCE(m.published_masters_count, 0::bigint) AS published_masters_count, COALESCE(i.live_ipos_count, 0::bigint) AS live_ipos_count, COALESCE(i.completed_ipos_count, 0::bigint) AS completed_ipos_count, COALESCE(i.nfts_minted, 0::numeric) AS nfts_minted, COALESCE(n.nft_holders_count, 0::bigint) AS nft_holders_count, COALESCE(f.followers_count, 0::bigint) AS followers_count, COALESCE(c.coin_holders_count, 0::bigint) AS coin_holders_count, COALESCE(r.revenue_by_currency, '{}'::jsonb) AS revenue_by_currency FROM artists a LEFT JOIN masters_per_artist m ON m.artist_id = a.id LEFT JOIN ipos_per_artist i ON i.artist_id = a.id LEFT JOIN nft_holders_per_artist n ON n.artist_id = a.id LEFT JOIN followers_per_artist f ON f.artist_id = a.id LEFT JOIN coin_holders_per_artist c ON c.artist_id = a.id LEFT JOIN revenue_per_artist r ON r.artist_id = a.id`);

export const artistTokens = pgTable("artist_tokens", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }).notNull(),
	txHash: bytea("tx_hash").notNull(),
	logIndex: integer("log_index").notNull(),
	artistId: uuid("artist_id").notNull(),
	tokenAddress: bytea("token_address").notNull(),
	symbol: text().notNull(),
	decimals: smallint().notNull(),
	totalSupply: numeric("total_supply", { precision: 78, scale:  0 }).default('0').notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("artist_tokens_artist_id_idx").using("btree", table.artistId.asc().nullsLast().op("uuid_ops")),
	index("artist_tokens_chain_id_block_number_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.blockNumber.asc().nullsLast().op("int8_ops")),
	primaryKey({ columns: [table.chainId, table.txHash, table.logIndex], name: "artist_tokens_pkey"}),
	unique("artist_tokens_chain_id_token_address_key").on(table.chainId, table.tokenAddress),
	check("artist_tokens_log_index_check", sql`log_index >= 0`),
	check("artist_tokens_chain_id_check", sql`chain_id > 0`),
	check("artist_tokens_block_number_check", sql`block_number >= 0`),
	check("artist_tokens_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("artist_tokens_tx_hash_check", sql`octet_length(tx_hash) = 32`),
	check("artist_tokens_token_address_check", sql`octet_length(token_address) = 20`),
	check("artist_tokens_decimals_check", sql`(decimals >= 0) AND (decimals <= 255)`),
]);

export const artists = pgTable("artists", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id").notNull(),
	artistName: text("artist_name").notNull(),
	slug: text().notNull(),
	bio: text(),
	profileImageUrl: text("profile_image_url"),
	bannerImageUrl: text("banner_image_url"),
	socialLinks: jsonb("social_links").default({}).notNull(),
	isVerified: boolean("is_verified").default(false).notNull(),
	verifiedAt: timestamp("verified_at", { withTimezone: true, mode: 'string' }),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("artists_created_at_idx").using("btree", table.createdAt.asc().nullsLast().op("timestamptz_ops")),
	index("artists_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "artists_user_id_fkey"
		}),
	unique("artists_slug_key").on(table.slug),
	check("artists_slug_check", sql`slug ~ '^[a-z0-9][a-z0-9-]*$'::text`),
]);

// Range-partitioned by month (sql/README.md); partitions are not listed.
export const auditLogs = pgTable("audit_logs", {
	id: uuid().defaultRandom().notNull(),
	actorUserId: uuid("actor_user_id"),
	action: text().notNull(),
	targetType: text("target_type").notNull(),
	targetId: uuid("target_id"),
	changes: jsonb().default({}).notNull(),
	ipAddress: inet("ip_address"),
	userAgent: text("user_agent"),
	requestId: text("request_id"),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
});

export const dividendClaims = pgTable("dividend_claims", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }).notNull(),
	txHash: bytea("tx_hash").notNull(),
	logIndex: integer("log_index").notNull(),
	distributorAddress: bytea("distributor_address").notNull(),
	dividendId: numeric("dividend_id", { precision: 78, scale:  0 }).notNull(),
	holderAddress: bytea("holder_address").notNull(),
	tokenId: numeric("token_id", { precision: 78, scale:  0 }).notNull(),
	amount: numeric({ precision: 78, scale:  0 }).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("dividend_claims_chain_id_block_number_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.blockNumber.asc().nullsLast().op("int8_ops")),
	index("dividend_claims_dividend_idx").using("btree", table.chainId.asc().nullsLast().op("numeric_ops"), table.distributorAddress.asc().nullsLast().op("numeric_ops"), table.dividendId.asc().nullsLast().op("bytea_ops")),
	index("dividend_claims_holder_idx").using("btree", table.chainId.asc().nullsLast().op("bytea_ops"), table.holderAddress.asc().nullsLast().op("bytea_ops")),
	index("dividend_claims_token_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.distributorAddress.asc().nullsLast().op("int8_ops"), table.tokenId.asc().nullsLast().op("numeric_ops"), table.dividendId.asc().nullsLast().op("bytea_ops")),
	primaryKey({ columns: [table.chainId, table.txHash, table.logIndex], name: "dividend_claims_pkey"}),
	check("dividend_claims_chain_id_check", sql`chain_id > 0`),
	check("dividend_claims_block_number_check", sql`block_number >= 0`),
	check("dividend_claims_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("dividend_claims_tx_hash_check", sql`octet_length(tx_hash) = 32`),
	check("dividend_claims_log_index_check", sql`log_index >= 0`),
	check("dividend_claims_distributor_address_check", sql`octet_length(distributor_address) = 20`),
	check("dividend_claims_dividend_id_check", sql`dividend_id >= (0)::numeric`),
	check("dividend_claims_holder_address_check", sql`octet_length(holder_address) = 20`),
	check("dividend_claims_token_id_check", sql`token_id >= (0)::numeric`),
	check("dividend_claims_amount_check", sql`amount >= (0)::numeric`),
]);

export const dividendEvents = pgTable("dividend_events", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }).notNull(),
	txHash: bytea("tx_hash").notNull(),
	logIndex: integer("log_index").notNull(),
	distributorAddress: bytea("distributor_address").notNull(),
	dividendId: numeric("dividend_id", { precision: 78, scale:  0 }).notNull(),
	payerAddress: bytea("payer_address").notNull(),
	tokenAddress: bytea("token_address").notNull(),
	amount: numeric({ precision: 78, scale:  0 }).notNull(),
	amountPerShare: numeric("amount_per_share", { precision: 78, scale:  0 }).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("dividend_events_chain_id_block_number_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.blockNumber.asc().nullsLast().op("int8_ops")),
	index("dividend_events_dividend_idx").using("btree", table.chainId.asc().nullsLast().op("bytea_ops"), table.distributorAddress.asc().nullsLast().op("numeric_ops"), table.dividendId.asc().nullsLast().op("bytea_ops")),
	primaryKey({ columns: [table.chainId, table.txHash, table.logIndex], name: "dividend_events_pkey"}),
	check("dividend_events_chain_id_check", sql`chain_id > 0`),
	check("dividend_events_block_number_check", sql`block_number >= 0`),
	check("dividend_events_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("dividend_events_tx_hash_check", sql`octet_length(tx_hash) = 32`),
	check("dividend_events_log_index_check", sql`log_index >= 0`),
	check("dividend_events_distributor_address_check", sql`octet_length(distributor_address) = 20`),
	check("dividend_events_dividend_id_check", sql`dividend_id >= (0)::numeric`),
	check("dividend_events_payer_address_check", sql`octet_length(payer_address) = 20`),
	check("dividend_events_token_address_check", sql`octet_length(token_address) = 20`),
	check("dividend_events_amount_check", sql`amount >= (0)::numeric`),
	check("dividend_events_amount_per_share_check", sql`amount_per_share >= (0)::numeric`),
]);

export const dividendHolderTotals = pgTable("dividend_holder_totals", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	distributorAddress: bytea("distributor_address").notNull(),
	holderAddress: bytea("holder_address").notNull(),
	claimedAmount: numeric("claimed_amount", { precision: 78, scale:  0 }).default('0').notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	claimsCount: bigint("claims_count", { mode: "number" }).default(0).notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("dividend_holder_totals_holder_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.holderAddress.asc().nullsLast().op("int8_ops")),
	primaryKey({ columns: [table.chainId, table.distributorAddress, table.holderAddress], name: "dividend_holder_totals_pkey"}),
	check("dividend_holder_totals_chain_id_check", sql`chain_id > 0`),
	check("dividend_holder_totals_distributor_address_check", sql`octet_length(distributor_address) = 20`),
	check("dividend_holder_totals_holder_address_check", sql`octet_length(holder_address) = 20`),
	check("dividend_holder_totals_claimed_amount_check", sql`claimed_amount >= (0)::numeric`),
	check("dividend_holder_totals_claims_count_check", sql`claims_count >= 0`),
]);

export const dividendTotals = pgTable("dividend_totals", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	distributorAddress: bytea("distributor_address").notNull(),
	dividendId: numeric("dividend_id", { precision: 78, scale:  0 }).notNull(),
	claimedAmount: numeric("claimed_amount", { precision: 78, scale:  0 }).default('0').notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	claimsCount: bigint("claims_count", { mode: "number" }).default(0).notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	primaryKey({ columns: [table.chainId, table.distributorAddress, table.dividendId], name: "dividend_totals_pkey"}),
	check("dividend_totals_chain_id_check", sql`chain_id > 0`),
	check("dividend_totals_distributor_address_check", sql`octet_length(distributor_address) = 20`),
	check("dividend_totals_dividend_id_check", sql`dividend_id >= (0)::numeric`),
	check("dividend_totals_claimed_amount_check", sql`claimed_amount >= (0)::numeric`),
	check("dividend_totals_claims_count_check", sql`claims_count >= 0`),
]);

export const identityProviders = pgTable("identity_providers", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	slug: text().notNull(),
	displayName: text("display_name").notNull(),
	kind: text().notNull(),
	clientId: text("client_id"),
	clientSecret: bytea("client_secret"),
	issuerUrl: text("issuer_url"),
	config: jsonb().default({}).notNull(),
	isEnabled: boolean("is_enabled").default(true).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	unique("identity_providers_slug_key").on(table.slug),
	check("identity_providers_kind_check", sql`kind = ANY (ARRAY['credentials'::text, 'oauth2'::text, 'oidc'::text, 'saml'::text, 'wallet'::text])`),
]);

export const indexerAudit = pgTable("indexer_audit", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).primaryKey().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	auditedTo: bigint("audited_to", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	cuts: bigint({ mode: "number" }).default(0).notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	check("indexer_audit_chain_id_check", sql`chain_id > 0`),
	check("indexer_audit_audited_to_check", sql`audited_to >= '-1'::integer`),
	check("indexer_audit_cuts_check", sql`cuts >= 0`),
]);

export const indexerBlocks = pgTable("indexer_blocks", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	parentHash: bytea("parent_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }).notNull(),
}, (table) => [
	primaryKey({ columns: [table.chainId, table.blockNumber], name: "indexer_blocks_pkey"}),
	check("indexer_blocks_chain_id_check", sql`chain_id > 0`),
	check("indexer_blocks_block_number_check", sql`block_number >= 0`),
	check("indexer_blocks_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("indexer_blocks_parent_hash_check", sql`octet_length(parent_hash) = 32`),
]);

export const indexerChanges = pgTable("indexer_changes", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	seq: bigint({ mode: "number" }).notNull(),
	kind: text().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	fromBlock: bigint("from_block", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	toBlock: bigint("to_block", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	removedFromBlock: bigint("removed_from_block", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	removedToBlock: bigint("removed_to_block", { mode: "number" }),
	nftTransfers: integer("nft_transfers").default(0).notNull(),
	coinTransfers: integer("coin_transfers").default(0).notNull(),
	dividendDeposits: integer("dividend_deposits").default(0).notNull(),
	dividendClaims: integer("dividend_claims").default(0).notNull(),
	contracts: integer().default(0).notNull(),
	rowsRemoved: integer("rows_removed").default(0).notNull(),
	invalidates: jsonb(),
	committedAt: timestamp("committed_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("indexer_changes_committed_at_idx").using("btree", table.committedAt.asc().nullsLast().op("timestamptz_ops")),
	primaryKey({ columns: [table.chainId, table.seq], name: "indexer_changes_pkey"}),
	check("indexer_changes_chain_id_check", sql`chain_id > 0`),
	check("indexer_changes_seq_check", sql`seq > 0`),
	check("indexer_changes_kind_check", sql`kind = ANY (ARRAY['batch'::text, 'reorg'::text, 'rewind'::text, 'heal'::text, 'forget'::text])`),
	check("indexer_changes_from_block_check", sql`from_block >= 0`),
	check("indexer_changes_nft_transfers_check", sql`nft_transfers >= 0`),
	check("indexer_changes_coin_transfers_check", sql`coin_transfers >= 0`),
	check("indexer_changes_dividend_deposits_check", sql`dividend_deposits >= 0`),
	check("indexer_changes_dividend_claims_check", sql`dividend_claims >= 0`),
	check("indexer_changes_contracts_check", sql`contracts >= 0`),
	check("indexer_changes_rows_removed_check", sql`rows_removed >= 0`),
	check("indexer_changes_check", sql`to_block >= from_block`),
	check("indexer_changes_check1", sql`(removed_from_block IS NULL) = (removed_to_block IS NULL)`),
	check("indexer_changes_check2", sql`removed_to_block >= removed_from_block`),
	check("indexer_changes_check3", sql`((rows_removed > 0) = (invalidates IS NOT NULL)) OR (kind = 'forget'::text)`),
]);

export const indexerCheckpoints = pgTable("indexer_checkpoints", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).primaryKey().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	check("indexer_checkpoints_chain_id_check", sql`chain_id > 0`),
	check("indexer_checkpoints_block_number_check", sql`block_number >= 0`),
	check("indexer_checkpoints_block_hash_check", sql`octet_length(block_hash) = 32`),
]);

export const indexerCoverage = pgTable("indexer_coverage", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	fromBlock: bigint("from_block", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	toBlock: bigint("to_block", { mode: "number" }).notNull(),
}, (table) => [
	primaryKey({ columns: [table.chainId, table.fromBlock], name: "indexer_coverage_pkey"}),
	check("indexer_coverage_chain_id_check", sql`chain_id > 0`),
	check("indexer_coverage_from_block_check", sql`from_block >= 0`),
	check("indexer_coverage_check", sql`to_block >= from_block`),
]);

export const indexerDiscrepancies = pgTable("indexer_discrepancies", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	id: bigint({ mode: "number" }).primaryKey().generatedAlwaysAsIdentity({ name: "indexer_discrepancies_id_seq", startWith: 1, increment: 1, minValue: 1, maxValue: 9223372036854775807, cache: 1 }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	kind: text().notNull(),
	ledgerCount: integer("ledger_count").notNull(),
	chainCount: integer("chain_count").notNull(),
	ledgerHash: bytea("ledger_hash"),
	chainHash: bytea("chain_hash").notNull(),
	source: text().notNull(),
	rowsRemoved: integer("rows_removed").notNull(),
	rowsAdded: integer("rows_added").notNull(),
	detectedAt: timestamp("detected_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("indexer_discrepancies_chain_id_detected_at_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.detectedAt.asc().nullsLast().op("int8_ops")),
	check("indexer_discrepancies_chain_id_check", sql`chain_id > 0`),
	check("indexer_discrepancies_block_number_check", sql`block_number >= 0`),
	check("indexer_discrepancies_kind_check", sql`kind = ANY (ARRAY['missing'::text, 'extra'::text, 'different'::text, 'block_hash'::text])`),
	check("indexer_discrepancies_ledger_count_check", sql`ledger_count >= 0`),
	check("indexer_discrepancies_chain_count_check", sql`chain_count >= 0`),
	check("indexer_discrepancies_chain_hash_check", sql`octet_length(chain_hash) = 32`),
	check("indexer_discrepancies_source_check", sql`source = ANY (ARRAY['receipts'::text, 'audit_endpoint'::text])`),
	check("indexer_discrepancies_rows_removed_check", sql`rows_removed >= 0`),
	check("indexer_discrepancies_rows_added_check", sql`rows_added >= 0`),
]);

export const indexerIdentity = pgTable("indexer_identity", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).primaryKey().notNull(),
	factoryAddress: bytea("factory_address").notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	firstBlock: bigint("first_block", { mode: "number" }).notNull(),
	recordedAt: timestamp("recorded_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	check("indexer_identity_chain_id_check", sql`chain_id > 0`),
	check("indexer_identity_factory_address_check", sql`octet_length(factory_address) = 20`),
	check("indexer_identity_first_block_check", sql`first_block >= 0`),
]);

export const indexerLeases = pgTable("indexer_leases", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).primaryKey().notNull(),
	holder: text().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	epoch: bigint({ mode: "number" }).notNull(),
	acquiredAt: timestamp("acquired_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	renewedAt: timestamp("renewed_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	expiresAt: timestamp("expires_at", { withTimezone: true, mode: 'string' }).notNull(),
}, (table) => [
	check("indexer_leases_chain_id_check", sql`chain_id > 0`),
	check("indexer_leases_holder_check", sql`(length(holder) >= 1) AND (length(holder) <= 200)`),
	check("indexer_leases_epoch_check", sql`epoch > 0`),
	check("indexer_leases_check", sql`expires_at >= renewed_at`),
]);

export const indexerLedger = pgTable("indexer_ledger", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	logCount: integer("log_count").notNull(),
	digest: bytea("digest").notNull(),
}, (table) => [
	primaryKey({ columns: [table.chainId, table.blockNumber], name: "indexer_ledger_pkey"}),
	check("indexer_ledger_chain_id_check", sql`chain_id > 0`),
	check("indexer_ledger_block_number_check", sql`block_number >= 0`),
	check("indexer_ledger_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("indexer_ledger_log_count_check", sql`log_count > 0`),
	check("indexer_ledger_digest_check", sql`octet_length(digest) = 16`),
]);

export const indexerQuarantine = pgTable("indexer_quarantine", {
	id: bigserial({ mode: "bigint" }).primaryKey().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }),
	txHash: bytea("tx_hash").notNull(),
	logIndex: integer("log_index").notNull(),
	address: bytea("address").notNull(),
	topics: bytea("topics").array().notNull(),
	data: bytea("data").notNull(),
	reason: text().notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("indexer_quarantine_chain_id_block_number_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.blockNumber.asc().nullsLast().op("int8_ops")),
	unique("indexer_quarantine_chain_id_tx_hash_log_index_key").on(table.chainId, table.txHash, table.logIndex),
	check("indexer_quarantine_tx_hash_check", sql`octet_length(tx_hash) = 32`),
	check("indexer_quarantine_chain_id_check", sql`chain_id > 0`),
	check("indexer_quarantine_block_number_check", sql`block_number >= 0`),
	check("indexer_quarantine_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("indexer_quarantine_log_index_check", sql`log_index >= 0`),
	check("indexer_quarantine_address_check", sql`octet_length(address) = 20`),
]);

export const indexerReorgs = pgTable("indexer_reorgs", {
	id: bigserial({ mode: "bigint" }).primaryKey().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	detectedAt: timestamp("detected_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	forkBlock: bigint("fork_block", { mode: "number" }),
	depth: integer(),
	oldHeadHash: bytea("old_head_hash"),
	newHeadHash: bytea("new_head_hash"),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	eventsReverted: bigint("events_reverted", { mode: "number" }),
	cause: text().default('chain').notNull(),
}, (table) => [
	index("indexer_reorgs_chain_id_detected_at_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.detectedAt.asc().nullsLast().op("int8_ops")),
	check("indexer_reorgs_chain_id_check", sql`chain_id > 0`),
	check("indexer_reorgs_fork_block_check", sql`fork_block >= 0`),
	check("indexer_reorgs_depth_check", sql`depth >= 0`),
	check("indexer_reorgs_old_head_hash_check", sql`octet_length(old_head_hash) = 32`),
	check("indexer_reorgs_new_head_hash_check", sql`octet_length(new_head_hash) = 32`),
	check("indexer_reorgs_events_reverted_check", sql`events_reverted >= 0`),
	check("indexer_reorgs_cause_check", sql`cause = ANY (ARRAY['chain'::text, 'operator'::text])`),
]);

export const invoices = pgTable("invoices", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id").notNull(),
	subscriptionId: uuid("subscription_id"),
	paymentProviderId: uuid("payment_provider_id"),
	providerInvoiceId: text("provider_invoice_id"),
	number: text().notNull(),
	status: text().default('draft').notNull(),
	currency: text().notNull(),
	subtotal: numeric({ precision: 38, scale:  18 }).default('0').notNull(),
	tax: numeric({ precision: 38, scale:  18 }).default('0').notNull(),
	total: numeric({ precision: 38, scale:  18 }).default('0').notNull(),
	amountPaid: numeric("amount_paid", { precision: 38, scale:  18 }).default('0').notNull(),
	lineItems: jsonb("line_items").default([]).notNull(),
	dueAt: timestamp("due_at", { withTimezone: true, mode: 'string' }),
	paidAt: timestamp("paid_at", { withTimezone: true, mode: 'string' }),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("invoices_status_due_at_idx").using("btree", table.status.asc().nullsLast().op("timestamptz_ops"), table.dueAt.asc().nullsLast().op("timestamptz_ops")),
	index("invoices_subscription_id_idx").using("btree", table.subscriptionId.asc().nullsLast().op("uuid_ops")),
	index("invoices_user_id_created_at_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops"), table.createdAt.desc().nullsFirst().op("timestamptz_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "invoices_user_id_fkey"
		}),
	foreignKey({
			columns: [table.subscriptionId],
			foreignColumns: [subscriptions.id],
			name: "invoices_subscription_id_fkey"
		}),
	foreignKey({
			columns: [table.paymentProviderId],
			foreignColumns: [paymentProviders.id],
			name: "invoices_payment_provider_id_fkey"
		}),
	unique("invoices_payment_provider_id_provider_invoice_id_key").on(table.paymentProviderId, table.providerInvoiceId),
	unique("invoices_number_key").on(table.number),
	check("invoices_status_check", sql`status = ANY (ARRAY['draft'::text, 'open'::text, 'paid'::text, 'void'::text, 'uncollectible'::text])`),
	check("invoices_currency_check", sql`currency ~ '^[A-Z0-9]{2,10}$'::text`),
	check("invoices_subtotal_check", sql`subtotal >= (0)::numeric`),
	check("invoices_tax_check", sql`tax >= (0)::numeric`),
	check("invoices_total_check", sql`total >= (0)::numeric`),
	check("invoices_amount_paid_check", sql`amount_paid >= (0)::numeric`),
]);

export const masterChainStats = pgMaterializedView("master_chain_stats", {	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }),
	masterId: uuid("master_id"),
	nftAddress: bytea("nft_address"),
	distributorAddress: bytea("distributor_address"),
	totalSupply: numeric("total_supply", { precision: 78, scale:  0 }),
	mintedSupply: numeric("minted_supply", { precision: 78, scale:  0 }),
	burnedSupply: numeric("burned_supply", { precision: 78, scale:  0 }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	nftsOutstanding: bigint("nfts_outstanding", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	holdersCount: bigint("holders_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	transfersCount: bigint("transfers_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	lastTransferBlock: bigint("last_transfer_block", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	dividendsCount: bigint("dividends_count", { mode: "number" }),
	dividendClaimsCount: numeric("dividend_claims_count"),
}).as(sql`WITH nfts AS ( SELECT master_nfts.chain_id, master_nfts.contract_address, count(*) FILTER (WHERE NOT master_nfts.is_burned) AS nfts_outstanding, count(DISTINCT master_nfts.owner_address) FILTER (WHERE NOT master_nfts.is_burned) AS holders_count FROM master_nfts GROUP BY master_nfts.chain_id, master_nfts.contract_address ), transfers AS ( SELECT nft_transfers.chain_id, nft_transfers.contract_address, count(*) AS transfers_count, max(nft_transfers.block_number) AS last_block FROM nft_transfers GROUP BY nft_transfers.chain_id, nft_transfers.contract_address ), deposits AS ( SELECT dividend_events.chain_id, dividend_events.distributor_address, count(*) AS dividends_count FROM dividend_events GROUP BY dividend_events.chain_id, dividend_events.distributor_address ), claims AS ( SELECT dividend_totals.chain_id, dividend_totals.distributor_address, sum(dividend_totals.claims_count) AS claims_count FROM dividend_totals GROUP BY dividend_totals.chain_id, dividend_totals.distributor_address ) SELECT c.chain_id, c.master_id, c.nft_address, c.distributor_address, c.total_supply, c.minted_supply, c.burned_supply, COALESCE(n.nfts_outstanding, 0::bigint) AS nfts_outstanding, COALESCE(n.holders_count, 0::bigint) AS holders_count, COALESCE(t.transfers_count, 0::bigint) AS transfers_count, t.last_block AS last_transfer_block, COALESCE(d.dividends_count, 0::bigint) AS dividends_count, COALESCE(cl.claims_count, 0::numeric) AS dividend_claims_count FROM master_contracts c LEFT JOIN nfts n ON n.chain_id = c.chain_id AND n.contract_address = c.nft_address LEFT JOIN transfers t ON t.chain_id = c.chain_id AND t.contract_address = c.nft_address LEFT JOIN deposits d ON d.chain_id = c.chain_id AND d.distributor_address = c.distributor_address LEFT JOIN claims cl ON cl.chain_id = c.chain_id AND cl.distributor_address = c.distributor_address`);

export const masterCollaborators = pgTable("master_collaborators", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	masterId: uuid("master_id").notNull(),
	userId: uuid("user_id"),
	name: text().notNull(),
	role: text().notNull(),
	shareBps: integer("share_bps").default(0).notNull(),
	walletAddress: bytea("wallet_address"),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("master_collaborators_master_id_idx").using("btree", table.masterId.asc().nullsLast().op("uuid_ops")),
	index("master_collaborators_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.masterId],
			foreignColumns: [masters.id],
			name: "master_collaborators_master_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "master_collaborators_user_id_fkey"
		}).onDelete("set null"),
	check("master_collaborators_role_check", sql`role = ANY (ARRAY['artist'::text, 'featured_artist'::text, 'producer'::text, 'songwriter'::text, 'engineer'::text, 'other'::text])`),
	check("master_collaborators_share_bps_check", sql`(share_bps >= 0) AND (share_bps <= 10000)`),
	check("master_collaborators_wallet_address_check", sql`octet_length(wallet_address) = 20`),
]);

export const masterContracts = pgTable("master_contracts", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }).notNull(),
	txHash: bytea("tx_hash").notNull(),
	logIndex: integer("log_index").notNull(),
	masterId: uuid("master_id").notNull(),
	nftAddress: bytea("nft_address").notNull(),
	distributorAddress: bytea("distributor_address").notNull(),
	totalSupply: numeric("total_supply", { precision: 78, scale:  0 }).notNull(),
	mintedSupply: numeric("minted_supply", { precision: 78, scale:  0 }).default('0').notNull(),
	burnedSupply: numeric("burned_supply", { precision: 78, scale:  0 }).default('0').notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("master_contracts_chain_id_block_number_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.blockNumber.asc().nullsLast().op("int8_ops")),
	index("master_contracts_master_id_idx").using("btree", table.masterId.asc().nullsLast().op("uuid_ops")),
	primaryKey({ columns: [table.chainId, table.txHash, table.logIndex], name: "master_contracts_pkey"}),
	unique("master_contracts_chain_id_nft_address_key").on(table.chainId, table.nftAddress),
	unique("master_contracts_chain_id_distributor_address_key").on(table.chainId, table.distributorAddress),
	check("master_contracts_chain_id_check", sql`chain_id > 0`),
	check("master_contracts_block_number_check", sql`block_number >= 0`),
	check("master_contracts_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("master_contracts_tx_hash_check", sql`octet_length(tx_hash) = 32`),
	check("master_contracts_log_index_check", sql`log_index >= 0`),
	check("master_contracts_nft_address_check", sql`octet_length(nft_address) = 20`),
	check("master_contracts_distributor_address_check", sql`octet_length(distributor_address) = 20`),
	check("master_contracts_total_supply_check", sql`total_supply >= (0)::numeric`),
	check("master_contracts_minted_supply_check", sql`minted_supply >= (0)::numeric`),
	check("master_contracts_burned_supply_check", sql`burned_supply >= (0)::numeric`),
]);

export const masterIpoStats = pgMaterializedView("master_ipo_stats", {	ipoId: uuid("ipo_id"),
	masterId: uuid("master_id"),
	artistId: uuid("artist_id"),
	status: text(),
	totalSupply: numeric("total_supply", { precision: 78, scale:  0 }),
	mintedSupply: numeric("minted_supply", { precision: 78, scale:  0 }),
	mintedBps: numeric("minted_bps"),
	actualStartAt: timestamp("actual_start_at", { withTimezone: true, mode: 'string' }),
	actualEndAt: timestamp("actual_end_at", { withTimezone: true, mode: 'string' }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	nftsOutstanding: bigint("nfts_outstanding", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	holdersCount: bigint("holders_count", { mode: "number" }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	transfersCount: bigint("transfers_count", { mode: "number" }),
	dividendsCount: numeric("dividends_count"),
	dividendsDeposited: jsonb("dividends_deposited"),
	dividendClaimsCount: numeric("dividend_claims_count"),
}).as(sql`WITH nfts_per_master AS ( SELECT master_nfts.master_id, count(*) FILTER (WHERE NOT master_nfts.is_burned) AS nfts_outstanding, count(DISTINCT ROW(master_nfts.chain_id, master_nfts.owner_address)) FILTER (WHERE NOT master_nfts.is_burned) AS holders_count FROM master_nfts GROUP BY master_nfts.master_id ), transfers_per_master AS ( SELECT c_1.master_id, count(*) AS transfers_count FROM nft_transfers t_1 JOIN master_contracts c_1 ON c_1.chain_id = t_1.chain_id AND c_1.nft_address = t_1.contract_address GROUP BY c_1.master_id ), deposits_per_token AS ( SELECT c_1.master_id, '0x'::text || encode(d_1.token_address, 'hex'::text) AS token, count(*) AS dividends_count, sum(d_1.amount) AS amount FROM dividend_events d_1 JOIN master_contracts c_1 ON c_1.chain_id = d_1.chain_id AND c_1.distributor_address = d_1.distributor_address GROUP BY c_1.master_id, d_1.token_address ), deposits_per_master AS ( SELECT deposits_per_token.master_id, sum(deposits_per_token.dividends_count) AS dividends_count, jsonb_object_agg(deposits_per_token.token, deposits_per_token.amount) AS dividends_deposited FROM deposits_per_token GROUP BY deposits_per_token.master_id ), claims_per_master AS ( SELECT c_1.master_id, sum(t_1.claims_count) AS dividend_claims_count FROM dividend_totals t_1 JOIN master_contracts c_1 ON c_1.chain_id = t_1.chain_id AND c_1.distributor_address = t_1.distributor_address GROUP BY c_1.master_id ) SELECT i.id AS ipo_id, i.master_id, m.artist_id, i.status, i.total_supply, i.minted_supply, floor(i.minted_supply * 10000::numeric / NULLIF(i.total_supply, 0::numeric)) AS minted_bps, i.actual_start_at, i.actual_end_at, COALESCE(n.nfts_outstanding, 0::bigint) AS nfts_outstanding, COALESCE(n.holders_count, 0::bigint) AS holders_count, COALESCE(t.transfers_count, 0::bigint) AS transfers_count, COALESCE(d.dividends_count, 0::numeric) AS dividends_count, COALESCE(d.dividends_deposited, '{}'::jsonb) AS dividends_deposited, COALESCE(c.dividend_claims_count, 0::numeric) AS dividend_claims_count FROM master_ipos i JOIN masters m ON m.id = i.master_id LEFT JOIN nfts_per_master n ON n.master_id = i.master_id LEFT JOIN transfers_per_master t ON t.master_id = i.master_id LEFT JOIN deposits_per_master d ON d.master_id = i.master_id LEFT JOIN claims_per_master c ON c.master_id = i.master_id`);

export const masterIpos = pgTable("master_ipos", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	masterId: uuid("master_id").notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }),
	status: text().default('draft').notNull(),
	totalSupply: numeric("total_supply", { precision: 78, scale:  0 }),
	mintedSupply: numeric("minted_supply", { precision: 78, scale:  0 }).default('0').notNull(),
	mintPrice: numeric("mint_price", { precision: 78, scale:  0 }),
	paymentTokenAddress: bytea("payment_token_address"),
	maxPerWallet: integer("max_per_wallet"),
	revenueShareNftHoldersBps: integer("revenue_share_nft_holders_bps").notNull(),
	retainedPlatformBps: integer("retained_platform_bps").default(0).notNull(),
	scheduledStartAt: timestamp("scheduled_start_at", { withTimezone: true, mode: 'string' }),
	scheduledEndAt: timestamp("scheduled_end_at", { withTimezone: true, mode: 'string' }),
	actualStartAt: timestamp("actual_start_at", { withTimezone: true, mode: 'string' }),
	actualEndAt: timestamp("actual_end_at", { withTimezone: true, mode: 'string' }),
	createdBy: uuid("created_by"),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("master_ipos_created_by_idx").using("btree", table.createdBy.asc().nullsLast().op("uuid_ops")),
	index("master_ipos_master_id_idx").using("btree", table.masterId.asc().nullsLast().op("uuid_ops")),
	uniqueIndex("master_ipos_master_id_open_key").using("btree", table.masterId.asc().nullsLast().op("uuid_ops")).where(sql`(status <> 'cancelled'::text)`),
	index("master_ipos_status_scheduled_start_at_idx").using("btree", table.status.asc().nullsLast().op("timestamptz_ops"), table.scheduledStartAt.asc().nullsLast().op("text_ops")),
	foreignKey({
			columns: [table.masterId],
			foreignColumns: [masters.id],
			name: "master_ipos_master_id_fkey"
		}),
	foreignKey({
			columns: [table.createdBy],
			foreignColumns: [users.id],
			name: "master_ipos_created_by_fkey"
		}).onDelete("set null"),
	check("master_ipos_chain_id_check", sql`chain_id > 0`),
	check("master_ipos_status_check", sql`status = ANY (ARRAY['draft'::text, 'scheduled'::text, 'live'::text, 'completed'::text, 'cancelled'::text])`),
	check("master_ipos_total_supply_check", sql`total_supply > (0)::numeric`),
	check("master_ipos_minted_supply_check", sql`minted_supply >= (0)::numeric`),
	check("master_ipos_mint_price_check", sql`mint_price >= (0)::numeric`),
	check("master_ipos_payment_token_address_check", sql`octet_length(payment_token_address) = 20`),
	check("master_ipos_max_per_wallet_check", sql`max_per_wallet > 0`),
	check("master_ipos_revenue_share_nft_holders_bps_check", sql`(revenue_share_nft_holders_bps >= 0) AND (revenue_share_nft_holders_bps <= 10000)`),
	check("master_ipos_retained_platform_bps_check", sql`(retained_platform_bps >= 0) AND (retained_platform_bps <= 10000)`),
	check("master_ipos_check", sql`(revenue_share_nft_holders_bps + retained_platform_bps) <= 10000`),
	check("master_ipos_check1", sql`scheduled_end_at > scheduled_start_at`),
]);

export const masterNfts = pgTable("master_nfts", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	contractAddress: bytea("contract_address").notNull(),
	tokenId: numeric("token_id", { precision: 78, scale:  0 }).notNull(),
	masterId: uuid("master_id").notNull(),
	ownerAddress: bytea("owner_address").notNull(),
	isBurned: boolean("is_burned").default(false).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	mintedBlock: bigint("minted_block", { mode: "number" }),
	mintedAt: timestamp("minted_at", { withTimezone: true, mode: 'string' }),
	mintTxHash: bytea("mint_tx_hash"),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	lastTransferBlock: bigint("last_transfer_block", { mode: "number" }).notNull(),
	lastTransferLogIndex: integer("last_transfer_log_index").notNull(),
	lastTransferAt: timestamp("last_transfer_at", { withTimezone: true, mode: 'string' }).notNull(),
	lastTransferTxHash: bytea("last_transfer_tx_hash").notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("master_nfts_live_owner_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.contractAddress.asc().nullsLast().op("bytea_ops"), table.ownerAddress.asc().nullsLast().op("int8_ops")).where(sql`(NOT is_burned)`),
	index("master_nfts_master_id_idx").using("btree", table.masterId.asc().nullsLast().op("uuid_ops")),
	index("master_nfts_owner_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.ownerAddress.asc().nullsLast().op("bytea_ops")),
	unique("master_nfts_chain_id_contract_address_token_id_key").on(table.chainId, table.contractAddress, table.tokenId),
	check("master_nfts_chain_id_check", sql`chain_id > 0`),
	check("master_nfts_contract_address_check", sql`octet_length(contract_address) = 20`),
	check("master_nfts_token_id_check", sql`token_id >= (0)::numeric`),
	check("master_nfts_owner_address_check", sql`octet_length(owner_address) = 20`),
	check("master_nfts_minted_block_check", sql`minted_block >= 0`),
	check("master_nfts_mint_tx_hash_check", sql`octet_length(mint_tx_hash) = 32`),
	check("master_nfts_last_transfer_block_check", sql`last_transfer_block >= 0`),
	check("master_nfts_last_transfer_log_index_check", sql`last_transfer_log_index >= 0`),
	check("master_nfts_last_transfer_tx_hash_check", sql`octet_length(last_transfer_tx_hash) = 32`),
]);

export const masters = pgTable("masters", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	artistId: uuid("artist_id").notNull(),
	producerId: uuid("producer_id"),
	title: text().notNull(),
	description: text(),
	genre: text(),
	coverImageUrl: text("cover_image_url"),
	audioUrl: text("audio_url"),
	isrc: text(),
	durationSeconds: integer("duration_seconds"),
	releaseDate: date("release_date"),
	status: text().default('draft').notNull(),
	metadata: jsonb().default({}).notNull(),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("masters_artist_id_idx").using("btree", table.artistId.asc().nullsLast().op("uuid_ops")),
	index("masters_genre_idx").using("btree", table.genre.asc().nullsLast().op("text_ops")),
	index("masters_producer_id_idx").using("btree", table.producerId.asc().nullsLast().op("uuid_ops")),
	index("masters_status_created_at_idx").using("btree", table.status.asc().nullsLast().op("text_ops"), table.createdAt.desc().nullsFirst().op("text_ops")),
	foreignKey({
			columns: [table.producerId],
			foreignColumns: [producers.id],
			name: "masters_producer_id_fkey"
		}).onDelete("set null"),
	foreignKey({
			columns: [table.artistId],
			foreignColumns: [artists.id],
			name: "masters_artist_id_fkey"
		}),
	unique("masters_isrc_key").on(table.isrc),
	pgPolicy("masters_analytics_read", { as: "permissive", for: "select", to: ["audifi_analytics"], using: sql`true` }),
	pgPolicy("masters_artist_policy", { as: "permissive", for: "all", to: ["public"] }),
	check("masters_duration_seconds_check", sql`duration_seconds > 0`),
	check("masters_status_check", sql`status = ANY (ARRAY['draft'::text, 'published'::text, 'archived'::text])`),
]);

export const nftTransfers = pgTable("nft_transfers", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }).notNull(),
	txHash: bytea("tx_hash").notNull(),
	logIndex: integer("log_index").notNull(),
	contractAddress: bytea("contract_address").notNull(),
	tokenId: numeric("token_id", { precision: 78, scale:  0 }).notNull(),
	fromAddress: bytea("from_address").notNull(),
	toAddress: bytea("to_address").notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("nft_transfers_chain_id_block_number_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.blockNumber.asc().nullsLast().op("int8_ops")),
	index("nft_transfers_from_address_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.fromAddress.asc().nullsLast().op("int8_ops")),
	index("nft_transfers_to_address_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.toAddress.asc().nullsLast().op("bytea_ops")),
	index("nft_transfers_token_history_idx").using("btree", table.chainId.asc().nullsLast().op("numeric_ops"), table.contractAddress.asc().nullsLast().op("int4_ops"), table.tokenId.asc().nullsLast().op("int4_ops"), table.blockNumber.asc().nullsLast().op("bytea_ops"), table.logIndex.asc().nullsLast().op("int4_ops")),
	primaryKey({ columns: [table.chainId, table.txHash, table.logIndex], name: "nft_transfers_pkey"}),
	check("nft_transfers_log_index_check", sql`log_index >= 0`),
	check("nft_transfers_chain_id_check", sql`chain_id > 0`),
	check("nft_transfers_block_number_check", sql`block_number >= 0`),
	check("nft_transfers_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("nft_transfers_tx_hash_check", sql`octet_length(tx_hash) = 32`),
	check("nft_transfers_contract_address_check", sql`octet_length(contract_address) = 20`),
	check("nft_transfers_token_id_check", sql`token_id >= (0)::numeric`),
	check("nft_transfers_from_address_check", sql`octet_length(from_address) = 20`),
	check("nft_transfers_to_address_check", sql`octet_length(to_address) = 20`),
]);

export const paymentMethods = pgTable("payment_methods", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id").notNull(),
	paymentProviderId: uuid("payment_provider_id").notNull(),
	providerMethodId: text("provider_method_id").notNull(),
	kind: text().notNull(),
	brand: text(),
	last4: text(),
	expMonth: smallint("exp_month"),
	expYear: smallint("exp_year"),
	walletAddress: bytea("wallet_address"),
	isDefault: boolean("is_default").default(false).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	uniqueIndex("payment_methods_one_default_key").using("btree", table.userId.asc().nullsLast().op("uuid_ops")).where(sql`is_default`),
	index("payment_methods_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "payment_methods_user_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.paymentProviderId],
			foreignColumns: [paymentProviders.id],
			name: "payment_methods_payment_provider_id_fkey"
		}),
	unique("payment_methods_payment_provider_id_provider_method_id_key").on(table.paymentProviderId, table.providerMethodId),
	check("payment_methods_kind_check", sql`kind = ANY (ARRAY['card'::text, 'bank_account'::text, 'crypto_wallet'::text])`),
	check("payment_methods_last4_check", sql`last4 ~ '^[0-9]{4}$'::text`),
	check("payment_methods_exp_month_check", sql`(exp_month >= 1) AND (exp_month <= 12)`),
	check("payment_methods_wallet_address_check", sql`octet_length(wallet_address) = 20`),
]);

export const paymentProviders = pgTable("payment_providers", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	slug: text().notNull(),
	displayName: text("display_name").notNull(),
	kind: text().notNull(),
	isEnabled: boolean("is_enabled").default(true).notNull(),
	webhookSecret: bytea("webhook_secret"),
	configJson: bytea("config_json"),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	unique("payment_providers_slug_key").on(table.slug),
	check("payment_providers_kind_check", sql`kind = ANY (ARRAY['card'::text, 'crypto'::text, 'bank'::text])`),
]);

export const paymentTransactions = pgTable("payment_transactions", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id").notNull(),
	invoiceId: uuid("invoice_id"),
	paymentProviderId: uuid("payment_provider_id").notNull(),
	paymentMethodId: uuid("payment_method_id"),
	providerTransactionId: text("provider_transaction_id"),
	kind: text().notNull(),
	status: text().default('pending').notNull(),
	amount: numeric({ precision: 38, scale:  18 }).notNull(),
	currency: text().notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }),
	txHash: bytea("tx_hash"),
	failureReason: text("failure_reason"),
	metadata: jsonb().default({}).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("payment_transactions_invoice_id_idx").using("btree", table.invoiceId.asc().nullsLast().op("uuid_ops")),
	index("payment_transactions_payment_method_id_idx").using("btree", table.paymentMethodId.asc().nullsLast().op("uuid_ops")),
	index("payment_transactions_status_created_at_idx").using("btree", table.status.asc().nullsLast().op("text_ops"), table.createdAt.asc().nullsLast().op("timestamptz_ops")),
	index("payment_transactions_user_id_created_at_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops"), table.createdAt.desc().nullsFirst().op("timestamptz_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "payment_transactions_user_id_fkey"
		}),
	foreignKey({
			columns: [table.invoiceId],
			foreignColumns: [invoices.id],
			name: "payment_transactions_invoice_id_fkey"
		}),
	foreignKey({
			columns: [table.paymentProviderId],
			foreignColumns: [paymentProviders.id],
			name: "payment_transactions_payment_provider_id_fkey"
		}),
	foreignKey({
			columns: [table.paymentMethodId],
			foreignColumns: [paymentMethods.id],
			name: "payment_transactions_payment_method_id_fkey"
		}).onDelete("set null"),
	unique("payment_transactions_payment_provider_id_provider_transacti_key").on(table.paymentProviderId, table.providerTransactionId),
	check("payment_transactions_kind_check", sql`kind = ANY (ARRAY['charge'::text, 'refund'::text, 'payout'::text])`),
	check("payment_transactions_status_check", sql`status = ANY (ARRAY['pending'::text, 'succeeded'::text, 'failed'::text, 'refunded'::text])`),
	check("payment_transactions_amount_check", sql`amount >= (0)::numeric`),
	check("payment_transactions_currency_check", sql`currency ~ '^[A-Z0-9]{2,10}$'::text`),
	check("payment_transactions_chain_id_check", sql`chain_id > 0`),
	check("payment_transactions_tx_hash_check", sql`octet_length(tx_hash) = 32`),
]);

export const producers = pgTable("producers", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id"),
	displayName: text("display_name").notNull(),
	slug: text().notNull(),
	bio: text(),
	profileImageUrl: text("profile_image_url"),
	socialLinks: jsonb("social_links").default({}).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("producers_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "producers_user_id_fkey"
		}).onDelete("set null"),
	unique("producers_slug_key").on(table.slug),
	check("producers_slug_check", sql`slug ~ '^[a-z0-9][a-z0-9-]*$'::text`),
]);

export const revenueEvents = pgTable("revenue_events", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	masterId: uuid("master_id").notNull(),
	sourceType: text("source_type").notNull(),
	sourceReference: text("source_reference"),
	amount: numeric({ precision: 38, scale:  18 }).notNull(),
	currency: text().notNull(),
	periodStart: date("period_start"),
	periodEnd: date("period_end"),
	status: text().default('pending').notNull(),
	verifiedBy: uuid("verified_by"),
	verifiedAt: timestamp("verified_at", { withTimezone: true, mode: 'string' }),
	distributedAt: timestamp("distributed_at", { withTimezone: true, mode: 'string' }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	distributionChainId: bigint("distribution_chain_id", { mode: "number" }),
	distributionTxHash: bytea("distribution_tx_hash"),
	rejectionReason: text("rejection_reason"),
	metadata: jsonb().default({}).notNull(),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("revenue_events_master_id_created_at_idx").using("btree", table.masterId.asc().nullsLast().op("uuid_ops"), table.createdAt.desc().nullsFirst().op("timestamptz_ops")),
	index("revenue_events_status_created_at_idx").using("btree", table.status.asc().nullsLast().op("timestamptz_ops"), table.createdAt.asc().nullsLast().op("text_ops")),
	index("revenue_events_verified_by_idx").using("btree", table.verifiedBy.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.masterId],
			foreignColumns: [masters.id],
			name: "revenue_events_master_id_fkey"
		}),
	foreignKey({
			columns: [table.verifiedBy],
			foreignColumns: [users.id],
			name: "revenue_events_verified_by_fkey"
		}).onDelete("set null"),
	unique("revenue_events_source_type_source_reference_key").on(table.sourceType, table.sourceReference),
	check("revenue_events_source_type_check", sql`source_type = ANY (ARRAY['streaming'::text, 'sync_licensing'::text, 'performance'::text, 'mechanical'::text, 'direct_sale'::text, 'other'::text])`),
	check("revenue_events_amount_check", sql`amount >= (0)::numeric`),
	check("revenue_events_currency_check", sql`currency ~ '^[A-Z0-9]{2,10}$'::text`),
	check("revenue_events_status_check", sql`status = ANY (ARRAY['pending'::text, 'verified'::text, 'distributed'::text, 'rejected'::text])`),
	check("revenue_events_distribution_chain_id_check", sql`distribution_chain_id > 0`),
	check("revenue_events_distribution_tx_hash_check", sql`octet_length(distribution_tx_hash) = 32`),
	check("revenue_events_check", sql`period_end >= period_start`),
]);

export const roles = pgTable("roles", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	name: text().notNull(),
	description: text(),
	permissions: jsonb().default([]).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	unique("roles_name_key").on(table.name),
]);

export const schemaMigrations = pgTable("schema_migrations", {
	version: integer().primaryKey().notNull(),
	name: text().notNull(),
	checksum: text().notNull(),
	appliedAt: timestamp("applied_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
});

export const securityEvents = pgTable("security_events", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	eventType: text("event_type").notNull(),
	severity: text().notNull(),
	userId: uuid("user_id"),
	title: text().notNull(),
	description: text(),
	ipAddress: inet("ip_address"),
	userAgent: text("user_agent"),
	eventData: jsonb("event_data").default({}).notNull(),
	resolvedAt: timestamp("resolved_at", { withTimezone: true, mode: 'string' }),
	resolvedBy: uuid("resolved_by"),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("security_events_event_type_created_at_idx").using("btree", table.eventType.asc().nullsLast().op("text_ops"), table.createdAt.desc().nullsFirst().op("timestamptz_ops")),
	index("security_events_resolved_by_idx").using("btree", table.resolvedBy.asc().nullsLast().op("uuid_ops")),
	index("security_events_severity_created_at_idx").using("btree", table.severity.asc().nullsLast().op("timestamptz_ops"), table.createdAt.desc().nullsFirst().op("timestamptz_ops")),
	index("security_events_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "security_events_user_id_fkey"
		}).onDelete("set null"),
	foreignKey({
			columns: [table.resolvedBy],
			foreignColumns: [users.id],
			name: "security_events_resolved_by_fkey"
		}).onDelete("set null"),
	check("security_events_severity_check", sql`severity = ANY (ARRAY['low'::text, 'medium'::text, 'high'::text, 'critical'::text])`),
]);

export const subscriptions = pgTable("subscriptions", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id").notNull(),
	planCode: text("plan_code").notNull(),
	status: text().default('active').notNull(),
	paymentProviderId: uuid("payment_provider_id"),
	providerSubscriptionId: text("provider_subscription_id"),
	currentPeriodStart: timestamp("current_period_start", { withTimezone: true, mode: 'string' }),
	currentPeriodEnd: timestamp("current_period_end", { withTimezone: true, mode: 'string' }),
	trialEndsAt: timestamp("trial_ends_at", { withTimezone: true, mode: 'string' }),
	cancelAtPeriodEnd: boolean("cancel_at_period_end").default(false).notNull(),
	cancelledAt: timestamp("cancelled_at", { withTimezone: true, mode: 'string' }),
	metadata: jsonb().default({}).notNull(),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("subscriptions_status_period_end_idx").using("btree", table.status.asc().nullsLast().op("text_ops"), table.currentPeriodEnd.asc().nullsLast().op("timestamptz_ops")),
	index("subscriptions_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "subscriptions_user_id_fkey"
		}),
	foreignKey({
			columns: [table.paymentProviderId],
			foreignColumns: [paymentProviders.id],
			name: "subscriptions_payment_provider_id_fkey"
		}),
	unique("subscriptions_payment_provider_id_provider_subscription_id_key").on(table.paymentProviderId, table.providerSubscriptionId),
	check("subscriptions_status_check", sql`status = ANY (ARRAY['trialing'::text, 'active'::text, 'past_due'::text, 'cancelled'::text, 'expired'::text])`),
	check("subscriptions_check", sql`current_period_end > current_period_start`),
]);

export const tokenHolders = pgTable("token_holders", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	tokenAddress: bytea("token_address").notNull(),
	holderAddress: bytea("holder_address").notNull(),
	balance: numeric({ precision: 78, scale:  0 }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	updatedBlock: bigint("updated_block", { mode: "number" }).notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("token_holders_holder_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.holderAddress.asc().nullsLast().op("int8_ops")),
	primaryKey({ columns: [table.chainId, table.tokenAddress, table.holderAddress], name: "token_holders_pkey"}),
	check("token_holders_chain_id_check", sql`chain_id > 0`),
	check("token_holders_token_address_check", sql`octet_length(token_address) = 20`),
	check("token_holders_holder_address_check", sql`octet_length(holder_address) = 20`),
	check("token_holders_updated_block_check", sql`updated_block >= 0`),
]);

export const tokenTransfers = pgTable("token_transfers", {
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	chainId: bigint("chain_id", { mode: "number" }).notNull(),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	blockNumber: bigint("block_number", { mode: "number" }).notNull(),
	blockHash: bytea("block_hash").notNull(),
	blockTimestamp: timestamp("block_timestamp", { withTimezone: true, mode: 'string' }).notNull(),
	txHash: bytea("tx_hash").notNull(),
	logIndex: integer("log_index").notNull(),
	tokenAddress: bytea("token_address").notNull(),
	fromAddress: bytea("from_address").notNull(),
	toAddress: bytea("to_address").notNull(),
	value: numeric({ precision: 78, scale:  0 }).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("token_transfers_chain_id_block_number_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.blockNumber.asc().nullsLast().op("int8_ops")),
	index("token_transfers_token_idx").using("btree", table.chainId.asc().nullsLast().op("int8_ops"), table.tokenAddress.asc().nullsLast().op("bytea_ops")),
	primaryKey({ columns: [table.chainId, table.txHash, table.logIndex], name: "token_transfers_pkey"}),
	check("token_transfers_chain_id_check", sql`chain_id > 0`),
	check("token_transfers_block_number_check", sql`block_number >= 0`),
	check("token_transfers_block_hash_check", sql`octet_length(block_hash) = 32`),
	check("token_transfers_tx_hash_check", sql`octet_length(tx_hash) = 32`),
	check("token_transfers_log_index_check", sql`log_index >= 0`),
	check("token_transfers_token_address_check", sql`octet_length(token_address) = 20`),
	check("token_transfers_from_address_check", sql`octet_length(from_address) = 20`),
	check("token_transfers_to_address_check", sql`octet_length(to_address) = 20`),
	check("token_transfers_value_check", sql`value >= (0)::numeric`),
]);

export const userRoles = pgTable("user_roles", {
	userId: uuid("user_id").notNull(),
	roleId: uuid("role_id").notNull(),
	grantedBy: uuid("granted_by"),
	grantedAt: timestamp("granted_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("user_roles_granted_by_idx").using("btree", table.grantedBy.asc().nullsLast().op("uuid_ops")),
	index("user_roles_role_id_idx").using("btree", table.roleId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "user_roles_user_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.roleId],
			foreignColumns: [roles.id],
			name: "user_roles_role_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.grantedBy],
			foreignColumns: [users.id],
			name: "user_roles_granted_by_fkey"
		}).onDelete("set null"),
	primaryKey({ columns: [table.userId, table.roleId], name: "user_roles_pkey"}),
]);

export const userWallets = pgTable("user_wallets", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	userId: uuid("user_id").notNull(),
	address: bytea("address").notNull(),
	label: text(),
	verifiedAt: timestamp("verified_at", { withTimezone: true, mode: 'string' }),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("user_wallets_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "user_wallets_user_id_fkey"
		}).onDelete("cascade"),
	unique("user_wallets_address_key").on(table.address),
	check("user_wallets_address_check", sql`octet_length(address) = 20`),
]);

export const users = pgTable("users", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	email: text().notNull(),
	emailVerifiedAt: timestamp("email_verified_at", { withTimezone: true, mode: 'string' }),
	passwordHash: text("password_hash"),
	displayName: text("display_name"),
	avatarUrl: text("avatar_url"),
	status: text().default('active').notNull(),
	twoFactorEnabled: boolean("two_factor_enabled").default(false).notNull(),
	twoFactorSecret: bytea("two_factor_secret"),
	lastLoginAt: timestamp("last_login_at", { withTimezone: true, mode: 'string' }),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("users_created_at_idx").using("btree", table.createdAt.asc().nullsLast().op("timestamptz_ops")),
	uniqueIndex("users_email_key").using("btree", sql`lower(email)`),
	check("users_status_check", sql`status = ANY (ARRAY['active'::text, 'suspended'::text, 'deleted'::text])`),
]);

export const vstudioDecisionPoints = pgTable("vstudio_decision_points", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	vstudioSessionId: uuid("vstudio_session_id").notNull(),
	position: integer().notNull(),
	title: text().notNull(),
	description: text(),
	options: jsonb().default([]).notNull(),
	status: text().default('pending').notNull(),
	opensAt: timestamp("opens_at", { withTimezone: true, mode: 'string' }),
	closesAt: timestamp("closes_at", { withTimezone: true, mode: 'string' }),
	result: jsonb(),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	foreignKey({
			columns: [table.vstudioSessionId],
			foreignColumns: [vstudioSessions.id],
			name: "vstudio_decision_points_vstudio_session_id_fkey"
		}).onDelete("cascade"),
	unique("vstudio_decision_points_id_vstudio_session_id_key").on(table.id, table.vstudioSessionId),
	unique("vstudio_decision_points_vstudio_session_id_position_key").on(table.vstudioSessionId, table.position),
	check("vstudio_decision_points_position_check", sql`"position" >= 0`),
	check("vstudio_decision_points_status_check", sql`status = ANY (ARRAY['pending'::text, 'open'::text, 'closed'::text, 'cancelled'::text])`),
]);

export const vstudioParticipants = pgTable("vstudio_participants", {
	vstudioSessionId: uuid("vstudio_session_id").notNull(),
	userId: uuid("user_id").notNull(),
	role: text().default('fan').notNull(),
	votesCount: integer("votes_count").default(0).notNull(),
	joinedAt: timestamp("joined_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	lastActiveAt: timestamp("last_active_at", { withTimezone: true, mode: 'string' }),
}, (table) => [
	index("vstudio_participants_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.vstudioSessionId],
			foreignColumns: [vstudioSessions.id],
			name: "vstudio_participants_vstudio_session_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "vstudio_participants_user_id_fkey"
		}).onDelete("cascade"),
	primaryKey({ columns: [table.vstudioSessionId, table.userId], name: "vstudio_participants_pkey"}),
	check("vstudio_participants_role_check", sql`role = ANY (ARRAY['host'::text, 'collaborator'::text, 'fan'::text])`),
	check("vstudio_participants_votes_count_check", sql`votes_count >= 0`),
]);

export const vstudioSessions = pgTable("vstudio_sessions", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	artistId: uuid("artist_id").notNull(),
	masterId: uuid("master_id"),
	title: text().notNull(),
	description: text(),
	status: text().default('draft').notNull(),
	eligibility: text().default('public').notNull(),
	startsAt: timestamp("starts_at", { withTimezone: true, mode: 'string' }),
	endsAt: timestamp("ends_at", { withTimezone: true, mode: 'string' }),
	// You can use { mode: "bigint" } if numbers are exceeding js number limitations
	totalVotes: bigint("total_votes", { mode: "number" }).default(0).notNull(),
	participantsCount: integer("participants_count").default(0).notNull(),
	settings: jsonb().default({}).notNull(),
	version: integer().default(0).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("vstudio_sessions_artist_id_idx").using("btree", table.artistId.asc().nullsLast().op("uuid_ops")),
	index("vstudio_sessions_master_id_idx").using("btree", table.masterId.asc().nullsLast().op("uuid_ops")),
	index("vstudio_sessions_status_starts_at_idx").using("btree", table.status.asc().nullsLast().op("text_ops"), table.startsAt.asc().nullsLast().op("timestamptz_ops")),
	foreignKey({
			columns: [table.artistId],
			foreignColumns: [artists.id],
			name: "vstudio_sessions_artist_id_fkey"
		}),
	foreignKey({
			columns: [table.masterId],
			foreignColumns: [masters.id],
			name: "vstudio_sessions_master_id_fkey"
		}).onDelete("set null"),
	check("vstudio_sessions_status_check", sql`status = ANY (ARRAY['draft'::text, 'scheduled'::text, 'live'::text, 'ended'::text, 'cancelled'::text])`),
	check("vstudio_sessions_eligibility_check", sql`eligibility = ANY (ARRAY['public'::text, 'nft_holders'::text, 'coin_holders'::text, 'nft_or_coin_holders'::text])`),
	check("vstudio_sessions_total_votes_check", sql`total_votes >= 0`),
	check("vstudio_sessions_participants_count_check", sql`participants_count >= 0`),
	check("vstudio_sessions_check", sql`ends_at > starts_at`),
]);

export const vstudioVotes = pgTable("vstudio_votes", {
	id: uuid().defaultRandom().primaryKey().notNull(),
	decisionPointId: uuid("decision_point_id").notNull(),
	vstudioSessionId: uuid("vstudio_session_id").notNull(),
	userId: uuid("user_id").notNull(),
	optionSelected: text("option_selected").notNull(),
	weight: numeric({ precision: 78, scale:  0 }).default('1').notNull(),
	verifiedNftHolder: boolean("verified_nft_holder").default(false).notNull(),
	verifiedCoinHolder: boolean("verified_coin_holder").default(false).notNull(),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
}, (table) => [
	index("vstudio_votes_session_id_created_at_idx").using("btree", table.vstudioSessionId.asc().nullsLast().op("uuid_ops"), table.createdAt.asc().nullsLast().op("timestamptz_ops")),
	index("vstudio_votes_user_id_idx").using("btree", table.userId.asc().nullsLast().op("uuid_ops")),
	foreignKey({
			columns: [table.userId],
			foreignColumns: [users.id],
			name: "vstudio_votes_user_id_fkey"
		}).onDelete("cascade"),
	foreignKey({
			columns: [table.decisionPointId, table.vstudioSessionId],
			foreignColumns: [vstudioDecisionPoints.id, vstudioDecisionPoints.vstudioSessionId],
			name: "vstudio_votes_decision_point_id_vstudio_session_id_fkey"
		}).onDelete("cascade"),
	unique("vstudio_votes_decision_point_id_user_id_key").on(table.decisionPointId, table.userId),
	check("vstudio_votes_weight_check", sql`weight > (0)::numeric`),
]);

// Range-partitioned by month (sql/README.md); partitions are not listed.
export const webhooksLog = pgTable("webhooks_log", {
	id: uuid().defaultRandom().notNull(),
	provider: text().notNull(),
	eventType: text("event_type"),
	externalEventId: text("external_event_id"),
	signatureValid: boolean("signature_valid"),
	headers: jsonb().default({}).notNull(),
	payload: jsonb().notNull(),
	status: text().default('received').notNull(),
	attempts: integer().default(0).notNull(),
	error: text(),
	processedAt: timestamp("processed_at", { withTimezone: true, mode: 'string' }),
	createdAt: timestamp("created_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
	updatedAt: timestamp("updated_at", { withTimezone: true, mode: 'string' }).defaultNow().notNull(),
});

