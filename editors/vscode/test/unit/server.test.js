'use strict';
// The command line the extension builds starts a real `gavel lsp`, and the JSON-RPC library
// under vscode-languageclient talks to it: initialize, open a file, get its diagnostics.
// GAVEL_BIN names the gavel executable (CI: the repository's .venv/bin/gavel).

const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const rpc = require('vscode-jsonrpc/node');
const { serverCommand } = require('../../lib/settings');

const gavel = process.env.GAVEL_BIN || path.resolve(__dirname, '../../../../.venv/bin/gavel');

// Without GAVEL_BIN and without the repository's .venv, there is no server to start (a
// checkout of the extension alone); with GAVEL_BIN set, a missing server fails the test.
const skip = !process.env.GAVEL_BIN && !fs.existsSync(gavel) && `no gavel at ${gavel}`;

test('gavel lsp answers the client over stdio', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gavel-vscode-'));
  const file = path.join(dir, 'p.rules');
  const text = 'package p\n\nrule r\n  deny "p.r"\n  when action.amout > 1\n';
  fs.writeFileSync(file, text);
  const { command, args } = serverCommand({ command: gavel }, dir);
  const server = spawn(command, [...args, '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const connection = rpc.createMessageConnection(
    new rpc.StreamMessageReader(server.stdout), new rpc.StreamMessageWriter(server.stdin));
  const published = new Promise((resolve) => {
    connection.onNotification('textDocument/publishDiagnostics', (params) => {
      if (params.uri.endsWith('/p.rules')) resolve(params);
    });
  });
  connection.listen();
  try {
    const init = await connection.sendRequest('initialize', {
      processId: process.pid, rootUri: `file://${dir}`, capabilities: {}, initializationOptions: { bundleRoots: [] },
    });
    assert.ok(init.capabilities.hoverProvider);
    assert.deepStrictEqual(init.capabilities.executeCommandProvider.commands.sort(),
      ['gavel.runFileTests', 'gavel.runTest']);
    await connection.sendNotification('initialized', {});
    await connection.sendNotification('textDocument/didOpen', {
      textDocument: { uri: `file://${file}`, languageId: 'gavel', version: 1, text },
    });
    const { diagnostics } = await published;
    assert.strictEqual(diagnostics.length, 1);
    assert.strictEqual(diagnostics[0].code, 'E101');
    assert.deepStrictEqual(diagnostics[0].range, { start: { line: 4, character: 7 }, end: { line: 4, character: 19 } });
    await connection.sendRequest('shutdown');
    // Every write awaited, and the server gone, before the connection closes: nothing may
    // write to a closed stream after the test.
    const exited = new Promise((resolve) => server.once('exit', resolve));
    await connection.sendNotification('exit');
    assert.strictEqual(await exited, 0);
  } finally {
    connection.dispose();
    if (server.exitCode === null) server.kill();
  }
});
