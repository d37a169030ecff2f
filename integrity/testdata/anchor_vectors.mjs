// Independent implementation of INTEGRITY.md "External anchoring (v1, exact)"
// in Node's crypto module, written separately from the Go code. It generates
// anchor_vectors.json (node anchor_vectors.mjs > anchor_vectors.json), which
// the Go package checks byte for byte; `node anchor_vectors.mjs --check`
// recomputes every vector of the committed file and exits 1 on a difference.
import crypto from 'node:crypto';
import fs from 'node:fs';

const sha256 = (...parts) => {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const hex = (b) => Buffer.from(b).toString('hex');
const genesis = (c) => sha256(Buffer.from('auditdb/genesis/v1/' + c, 'utf8'));

function leaf(c, seq, hashHex) {
  return sha256(Buffer.from([0x00]), Buffer.from(`auditdb/anchor-leaf/v1\n${c}\n${seq}\n${hashHex}`, 'utf8'));
}
function node(l, r) {
  return sha256(Buffer.from([0x01]), l, r);
}
// RFC 6962 section 2.1: MTH over n leaves (already hashed), split at the
// largest power of two smaller than n.
function mth(leaves) {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return node(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
function message(log, n, prev, timeUS, k, rootHex) {
  return `auditdb/anchor/v1\nlog ${log}\nbundle ${n}\nprev ${prev}\ntime ${timeUS}\nchains ${k}\nroot ${rootHex}`;
}
const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
function keyOf(seed) {
  const priv = crypto.createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: 'der', type: 'pkcs8' });
  const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32);
  return { priv, pub };
}
const sign = (priv, msg) => crypto.sign(null, Buffer.from(msg, 'utf8'), priv);

// The pinned bundle file form: keys in INTEGRITY.md's order, ", " and ": "
// separators (as in the spec's example and in J), one object per head and
// signature in the same style, one trailing newline.
const js = (s) => JSON.stringify(s);
function bundleFile(b) {
  const heads = b.heads.map((h) => `{"chain": ${h.chain}, "seq": ${h.seq}, "hash": ${js(h.hash)}}`).join(', ');
  const sigs = b.signatures.map((s) => `{"key_id": ${js(s.key_id)}, "sig": ${js(s.sig)}}`).join(', ');
  return `{"format": "auditdb-anchor", "version": 1, "log": ${js(b.log)}, "bundle": ${b.bundle}, "prev": ${js(b.prev)}, ` +
    `"time_us": ${b.time_us}, "heads": [${heads}], "root": ${js(b.root)}, "signatures": [${sigs}]}\n`;
}
// A witness's cosignature, a sibling object <log>/<n as 20 digits>.cosig.<key_id>.json.
function cosigFile(c) {
  return `{"format": "auditdb-anchor-cosig", "version": 1, "log": ${js(c.log)}, "bundle": ${c.bundle}, ` +
    `"message_sha256": ${js(c.message_sha256)}, "key_id": ${js(c.key_id)}, "sig": ${js(c.sig)}}\n`;
}

// Heads for a K-chain vector: chain c at seq c*3 (chain 0 empty: seq 0 and
// its genesis hash), the others at a hash derived from the chain number.
function headsFor(k, salt) {
  const out = [];
  for (let c = 0; c < k; c++) {
    const seq = c * 3;
    const h = seq === 0 ? hex(genesis(c)) : hex(sha256(Buffer.from(`vector head ${salt} ${c}`, 'utf8')));
    out.push({ chain: c, seq, hash: h });
  }
  return out;
}
const rootOf = (heads) => mth(heads.map((h) => leaf(h.chain, h.seq, h.hash)));

function build() {
  const leaves = [
    { chain: 0, seq: 0, hash: hex(genesis(0)) },
    { chain: 15, seq: 0, hash: hex(genesis(15)) },
    { chain: 3, seq: 1, hash: hex(sha256(Buffer.from('row 1', 'utf8'))) },
    { chain: 12, seq: 1234567890123, hash: hex(sha256(Buffer.from('big seq', 'utf8'))) },
  ].map((l) => ({ ...l, leaf: hex(leaf(l.chain, l.seq, l.hash)) }));

  const roots = [1, 2, 3, 5, 7, 16].map((k) => {
    const heads = headsFor(k, 'k' + k);
    const ls = heads.map((h) => leaf(h.chain, h.seq, h.hash));
    return { chains: k, heads, leaves: ls.map(hex), root: hex(mth(ls)) };
  });

  const keySpecs = [
    { id: 'anchor-1', seed: Buffer.from(Array.from({ length: 32 }, (_, i) => i)) },
    { id: 'witness.a', seed: sha256(Buffer.from('auditdb anchor vector witness seed', 'utf8')) },
  ];
  const keys = keySpecs.map((s) => {
    const { priv, pub } = keyOf(s.seed);
    return { id: s.id, seed_hex: hex(s.seed), private: `${s.id}:${s.seed.toString('base64')}`, public: `${s.id}:${pub.toString('base64')}`, priv };
  });

  const log = '5f0c6b1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f';
  const zeros = '0'.repeat(64);
  // Bundle 1: an empty log of 16 chains (every head seq 0, genesis hash).
  const heads1 = Array.from({ length: 16 }, (_, c) => ({ chain: c, seq: 0, hash: hex(genesis(c)) }));
  const b1 = { log, bundle: 1, prev: zeros, time_us: 1764806400000000, heads: heads1, root: hex(rootOf(heads1)) };
  // Bundle 2: chained to bundle 1, some chains moved.
  const heads2 = headsFor(16, 'bundle2');
  const bundles = [b1];
  const m1 = message(log, 1, zeros, b1.time_us, 16, b1.root);
  const b2 = { log, bundle: 2, prev: hex(sha256(Buffer.from(m1, 'utf8'))), time_us: 1764810000123456, heads: heads2, root: hex(rootOf(heads2)) };
  bundles.push(b2);
  const outBundles = bundles.map((b) => {
    const msg = message(b.log, b.bundle, b.prev, b.time_us, b.heads.length, b.root);
    const sig = sign(keys[0].priv, msg).toString('base64');
    const full = { ...b, signatures: [{ key_id: keys[0].id, sig }] };
    return {
      message: msg,
      message_sha256: hex(sha256(Buffer.from(msg, 'utf8'))),
      key: keys[0].public,
      signature: sig,
      name: `${log}/${String(b.bundle).padStart(20, '0')}.json`,
      file: bundleFile(full),
    };
  });
  // The witness cosigns bundle 2.
  const wsig = sign(keys[1].priv, outBundles[1].message).toString('base64');
  const cosig = {
    name: `${log}/${String(2).padStart(20, '0')}.cosig.${keys[1].id}.json`,
    file: cosigFile({ log, bundle: 2, message_sha256: outBundles[1].message_sha256, key_id: keys[1].id, sig: wsig }),
  };

  return {
    spec: 'INTEGRITY.md, External anchoring (v1, exact)',
    note: 'Generated by anchor_vectors.mjs (Node crypto), an implementation independent of the Go package, which checks every value. ' +
      'Readings pinned here where the spec is open: a bundle lists every chain 0..K-1 once, in order, and chains = len(heads); ' +
      'an empty chain is seq 0 with its genesis hash, so an empty log has a bundle too; the file is written with keys in the ' +
      "spec's order, \", \" and \": \" separators and one trailing newline (readers accept any JSON whitespace and key order); " +
      'a witness adds its signature as a sibling object <n>.cosig.<key_id>.json.',
    leaves,
    roots,
    keys: keys.map(({ priv, ...k }) => k),
    bundles: outBundles,
    cosignatures: [cosig],
  };
}

const built = build();
if (process.argv.includes('--check')) {
  const path = new URL('./anchor_vectors.json', import.meta.url);
  const committed = fs.readFileSync(path, 'utf8');
  const fresh = JSON.stringify(built, null, 2) + '\n';
  if (committed !== fresh) {
    console.error('anchor_vectors.json differs from what anchor_vectors.mjs computes');
    process.exit(1);
  }
  // Also verify each signature with the public key, as a verifier would.
  for (const b of built.bundles) {
    const pub = Buffer.from(b.key.split(':')[1], 'base64');
    const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pub]);
    const k = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
    if (!crypto.verify(null, Buffer.from(b.message, 'utf8'), k, Buffer.from(b.signature, 'base64'))) {
      console.error('signature does not verify: bundle', b.name);
      process.exit(1);
    }
  }
  console.log('anchor_vectors.json: every vector agrees');
} else {
  process.stdout.write(JSON.stringify(built, null, 2) + '\n');
}
