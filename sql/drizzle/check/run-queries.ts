// The backend's side, as the backend would write it: only the generated schema, drizzle-orm
// and the `postgres` driver. tests/test_drizzle.py compiles this with tsc and runs it
// against an indexed test database. Input on stdin (JSON):
//   { "databaseUrl": "...", "queriesDir": "...", "calls": [{ "name": "...", "params": [...] }],
//     "wallets": ["0x...", ...] }
// Output on stdout (JSON): { "queries": { name: rows }, "owned": [...] }, where `queries` runs
// each named SQL file of sql/queries as written, and `owned` is a typed Drizzle query over
// `masterNfts` for the wallets. Timestamps are written as epoch milliseconds.
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { and, asc, eq, inArray } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";

import * as schema from "../schema";

interface Input {
  databaseUrl: string;
  queriesDir: string;
  calls: { name: string; params: (string | number | null)[] }[];
  wallets: string[];
}

function hex(value: Buffer): string {
  return "0x" + value.toString("hex");
}

function jsonValue(_key: string, value: unknown): unknown {
  return value instanceof Date ? value.getTime() : value;
}

async function main(): Promise<void> {
  const input = JSON.parse(readFileSync(0, "utf8")) as Input;
  const client = postgres(input.databaseUrl, { max: 2, onnotice: () => {} });
  const db = drizzle(client, { schema });
  try {
    const queries: Record<string, unknown[]> = {};
    for (const call of input.calls) {
      const text = readFileSync(join(input.queriesDir, `${call.name}.sql`), "utf8");
      queries[call.name] = [...(await client.unsafe(text, call.params))];
    }
    const wallets = input.wallets.map((w) => Buffer.from(w.slice(2), "hex"));
    const owned = wallets.length
      ? await db
          .select({
            chainId: schema.masterNfts.chainId,
            contract: schema.masterNfts.contractAddress,
            tokenId: schema.masterNfts.tokenId,
            owner: schema.masterNfts.ownerAddress,
          })
          .from(schema.masterNfts)
          .where(
            and(
              eq(schema.masterNfts.isBurned, false),
              inArray(schema.masterNfts.ownerAddress, wallets),
            ),
          )
          .orderBy(asc(schema.masterNfts.contractAddress), asc(schema.masterNfts.tokenId))
      : [];
    const ownedRows = owned.map((r) => ({
      chainId: r.chainId,
      contract: hex(r.contract),
      tokenId: r.tokenId,
      owner: hex(r.owner),
    }));
    process.stdout.write(JSON.stringify({ queries, owned: ownedRows }, jsonValue));
  } finally {
    await client.end({ timeout: 5 });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
