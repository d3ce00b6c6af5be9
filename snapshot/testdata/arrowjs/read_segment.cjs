// Reads Cairn segment files with the JavaScript Arrow implementation, in
// place (a file under a `cairn serve` data directory is a plain Arrow file).
//
//   node read_segment.cjs rows FILE       {metadata, columns, rows} of one file as JSON
//   node read_segment.cjs summary FILE…   [{vchannel, type, count, bytes}] over all files
//
// 64-bit integers print as decimal strings, payloads as base64, timestamps
// as milliseconds since the epoch. The snapshot package's interop tests
// compare both with what Cairn's own reader says.
'use strict';
const fs = require('fs');
const arrow = require('apache-arrow');
const fzstd = require('fzstd');

// Arrow JS ships no zstd codec: register a pure-JS decoder for the IPC body
// compression Cairn writes. fzstd may return a view that starts 12 bytes
// into its buffer, and Arrow JS makes its 64-bit arrays over the view as it
// is ("start offset of BigUint64Array should be a multiple of 8"): copy
// such a view to a buffer of its own.
arrow.compressionRegistry.set(arrow.CompressionType.ZSTD, {
  decode: (buf) => {
    const out = fzstd.decompress(buf);
    return out.byteOffset % 8 === 0 ? out : out.slice();
  },
});

const big = (v) => (v === null || v === undefined ? null : v.toString());
const [mode, ...files] = process.argv.slice(2);

if (mode === 'rows') {
  const table = arrow.tableFromIPC(fs.readFileSync(files[0]));
  const rows = [];
  for (const r of table) {
    const key = r.key === null ? null : { producer: r.key.producer, epoch: big(r.key.epoch), seq: big(r.key.seq) };
    let props = null;
    if (r.properties !== null) {
      props = {};
      for (const [k, v] of r.properties) props[k] = v;
    }
    rows.push({
      vchannel: r.vchannel, offset: big(r.offset), index: r.index, term: big(r.term), timetick: big(r.timetick),
      timestamp: Number(r.timestamp), type: r.type, type_code: r.type_code, txn: big(r.txn), key, properties: props,
      payload: Buffer.from(r.payload).toString('base64'), broadcast_id: r.broadcast_id,
    });
  }
  const metadata = Object.fromEntries(table.schema.metadata);
  const columns = table.schema.fields.map((f) => f.name);
  process.stdout.write(JSON.stringify({ metadata, columns, rows }));
} else if (mode === 'summary') {
  const groups = new Map();
  for (const file of files) {
    const table = arrow.tableFromIPC(fs.readFileSync(file));
    const vch = table.getChild('vchannel');
    const type = table.getChild('type');
    const payload = table.getChild('payload');
    for (let i = 0; i < table.numRows; i++) {
      const k = JSON.stringify([vch.get(i), type.get(i)]);
      const g = groups.get(k) || { vchannel: vch.get(i), type: type.get(i), count: 0, bytes: 0 };
      g.count++;
      g.bytes += payload.get(i).length;
      groups.set(k, g);
    }
  }
  process.stdout.write(JSON.stringify([...groups.values()]));
} else {
  process.stderr.write('usage: node read_segment.cjs rows FILE | summary FILE...\n');
  process.exit(2);
}
