// drizzle-kit's settings for `pull`; run through `python -m tests.drizzle` (make drizzle),
// which migrates a fresh database with the project's runner and sets both variables.
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schemaFilter: ["public"],
  out: process.env.DRIZZLE_OUT,
  dbCredentials: { url: process.env.DRIZZLE_DATABASE_URL ?? "" },
});
