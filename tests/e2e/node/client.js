// A Gavel client in another language, built only from the repo's proto/ files.
// Usage: node client.js ADDR API_KEY PROTO_DIR
// Decides one request, consumes its token, tries to consume it again, and prints one JSON
// object describing what happened (the Python test asserts on it).
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [addr, key, protoDir] = process.argv.slice(2);
const definition = loader.loadSync(
  ['gavel/v1/decision.proto', 'gavel/v1/evidence.proto'],
  { includeDirs: [path.resolve(protoDir)], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).gavel.v1;
const decisions = new v1.DecisionService(addr, grpc.credentials.createInsecure());
const evidence = new v1.EvidenceService(addr, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
metadata.add('authorization', `Bearer ${key}`);

const call = (client, method, request) => new Promise((resolve) => {
  client[method](request, metadata, (err, res) => resolve({ err, res }));
});
const reason = (err) => {
  const raw = err && err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  return raw ? raw.toString('latin1') : '';
};

(async () => {
  const out = {};
  const decided = await call(decisions, 'Decide', {
    action: {
      type: 'payment', amount: '120.00', currency: 'USD',
      args: { fields: { invoice: { stringValue: 'INV-7' }, lines: { numberValue: 3 } } },
    },
    agent: { id: 'node-bot' },
    correlation_id: 'from-node',
  });
  if (decided.err) { out.decide_error = decided.err.code; console.log(JSON.stringify(out)); process.exit(1); }
  out.outcome = decided.res.outcome;
  out.reason_code = decided.res.reason_code;
  out.correlation_id = decided.res.correlation_id;
  out.has_token = decided.res.decision_token.length > 0;
  const keys = await call(evidence, 'GetPublicKeys', {});
  out.jwks_keys = keys.err ? -1 : JSON.parse(keys.res.jwks_json).keys.length;
  const consumed = await call(decisions, 'ConsumeToken', { token: decided.res.decision_token });
  out.consumed = consumed.err ? `error:${consumed.err.code}` : consumed.res.valid;
  const replay = await call(decisions, 'ConsumeToken', { token: decided.res.decision_token });
  out.replay_code = replay.err ? replay.err.code : 0;
  out.replay_reason_in_details = reason(replay.err).includes('DECISION_TOKEN_REUSED');
  const bad = await call(decisions, 'Decide', { action: { type: 'payment', amount: '-1' }, agent: { id: 'node-bot' } });
  out.bad_code = bad.err ? bad.err.code : 0;
  console.log(JSON.stringify(out));
  process.exit(0);
})();
