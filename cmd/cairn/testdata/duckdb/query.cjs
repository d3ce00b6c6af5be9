// Runs the SQL in the file argv[2] with DuckDB (npm @duckdb/node-api), in
// the current directory, and prints its rows as a JSON array of objects;
// integers print as numbers. cmd/cairn's export test compares them with
// Cairn's own counts. Usage: node query.cjs QUERY.sql
'use strict';
const fs = require('fs');
const { DuckDBInstance } = require('@duckdb/node-api');

(async () => {
  const sql = fs.readFileSync(process.argv[2], 'utf8');
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const reader = await conn.runAndReadAll(sql);
  const rows = reader.getRowObjectsJS();
  process.stdout.write(JSON.stringify(rows, (k, v) => (typeof v === 'bigint' ? Number(v) : v)));
})().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
