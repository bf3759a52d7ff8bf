'use strict';
// Starts `gavel lsp` for .rules files. Everything a user sees beyond highlighting comes from
// the server: diagnostics, hover, completion, navigation, rename, formatting, quick fixes and
// the "Run test" code lenses (the server runs them; the client forwards the command).

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');
const { serverCommand, initializationOptions } = require('./lib/settings');

let client;

function settings() {
  const config = vscode.workspace.getConfiguration('gavel');
  return {
    command: config.get('server.command'),
    extraArgs: config.get('server.extraArgs'),
    bundleRoots: config.get('bundleRoots'),
  };
}

function createClient() {
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  const current = settings();
  const { command, args } = serverCommand(current, folder ? folder.uri.fsPath : undefined);
  const run = { command, args, transport: TransportKind.stdio };
  return new LanguageClient('gavel', 'Gavel language server', { run, debug: run }, {
    documentSelector: [
      { scheme: 'file', language: 'gavel' },
      { scheme: 'untitled', language: 'gavel' },
    ],
    synchronize: {
      // Files of a bundle change on disk too (git checkout, another editor): the server re-reads.
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.{rules,json}'),
    },
    initializationOptions: initializationOptions(current),
  });
}

async function activate(context) {
  client = createClient();
  context.subscriptions.push(vscode.commands.registerCommand('gavel.restartServer', async () => {
    if (client) {
      await client.stop();
    }
    client = createClient();
    await client.start();
  }));
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (event) => {
    if (event.affectsConfiguration('gavel')) {
      await vscode.commands.executeCommand('gavel.restartServer');
    }
  }));
  await client.start();
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
