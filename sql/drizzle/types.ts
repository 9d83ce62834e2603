// Column types drizzle-kit 0.31 cannot introspect; tests/drizzle.py points the generated
// schema at these. Hand-written: not regenerated.
import { customType } from "drizzle-orm/pg-core";

/** PostgreSQL `bytea`: addresses (20 bytes) and hashes (32 bytes), as Node Buffers.
 * Compare with `Buffer.equals`; render as `"0x" + value.toString("hex")`. */
export const bytea = customType<{ data: Buffer; driverData: Buffer }>({
  dataType() {
    return "bytea";
  },
});
