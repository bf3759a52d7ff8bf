'use strict';
// How the extension's settings become the `gavel lsp` command and the server's
// initialization options. No `vscode` import here, so `node --test` can check it.

const path = require('path');

function serverCommand(settings, workspaceFolder) {
  let command = settings.command || 'gavel';
  // A relative path with a separator (".venv/bin/gavel") is the workspace's; a bare name is looked up on PATH.
  if (workspaceFolder && command.includes('/') && !path.isAbsolute(command)) {
    command = path.join(workspaceFolder, command);
  }
  const args = ['lsp', ...(Array.isArray(settings.extraArgs) ? settings.extraArgs : [])];
  return { command, args };
}

function initializationOptions(settings) {
  const roots = Array.isArray(settings.bundleRoots) ? settings.bundleRoots.filter((r) => typeof r === 'string') : [];
  return { bundleRoots: roots };
}

module.exports = { serverCommand, initializationOptions };
