'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { serverCommand, initializationOptions } = require('../../lib/settings');

test('the default command is gavel lsp from PATH', () => {
  assert.deepStrictEqual(serverCommand({}, '/work/project'), { command: 'gavel', args: ['lsp'] });
});

test('a relative command path is the workspace folder\'s', () => {
  const got = serverCommand({ command: '.venv/bin/gavel', extraArgs: ['--bundle-root', 'rules'] }, '/work/project');
  assert.deepStrictEqual(got, { command: '/work/project/.venv/bin/gavel', args: ['lsp', '--bundle-root', 'rules'] });
});

test('an absolute command path stays as it is', () => {
  assert.strictEqual(serverCommand({ command: '/opt/gavel/bin/gavel' }, '/work/project').command, '/opt/gavel/bin/gavel');
});

test('bundle roots go to the server; anything but strings is dropped', () => {
  assert.deepStrictEqual(initializationOptions({ bundleRoots: ['rules', 3, null, 'policies'] }),
    { bundleRoots: ['rules', 'policies'] });
  assert.deepStrictEqual(initializationOptions({}), { bundleRoots: [] });
});
