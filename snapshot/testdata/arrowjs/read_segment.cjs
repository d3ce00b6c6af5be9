// Reads a Cairn segment file with the JavaScript Arrow implementation and
// prints {metadata, rows} as JSON on stdout: the snapshot package's interop
// test compares it with what Go wrote. 64-bit integers print as decimal
// strings, payloads as base64. Usage: node read_segment.cjs FILE
'use strict';
const fs = require('fs');
const arrow = require('apache-arrow');
const fzstd = require('fzstd');

// Arrow JS ships no zstd codec: register a pure-JS decoder for the IPC body
// compression Cairn writes.
arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, { decode: (buf) => fzstd.decompress(buf) });

const table = arrow.tableFromIPC(fs.readFileSync(process.argv[2]));

const big = (v) => (v === null || v === undefined ? null : v.toString());
const rows = [];
for (const r of table) {
  const key = r.key === null ? null : { producer: r.key.producer, epoch: big(r.key.epoch), seq: big(r.key.seq) };
  let props = null;
  if (r.properties !== null) {
    props = {};
    for (const [k, v] of r.properties) props[k] = v;
  }
  rows.push({
    offset: big(r.offset), index: r.index, term: big(r.term), timetick: big(r.timetick),
    type: r.type, txn: big(r.txn), key, properties: props,
    payload: Buffer.from(r.payload).toString('base64'), broadcast_id: r.broadcast_id,
  });
}
const metadata = Object.fromEntries(table.schema.metadata);
const columns = table.schema.fields.map((f) => f.name);
process.stdout.write(JSON.stringify({ metadata, columns, rows }));
