import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { action, log, out, parseIntOption, parseNonEmpty } from '../common.js';
import { checkWebFiles, startWebServer } from '../web-server.js';

/** Open `url` in the desktop's browser, best effort (a missing opener is a note, not an error). */
function openBrowser(url: string): void {
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  const child = spawn(cmd, args as string[], { stdio: 'ignore', detached: true });
  child.on('error', () => log(`note: could not open a browser (${cmd}); open ${url} yourself`));
  child.unref();
}

export function register(program: Command): void {
  program
    .command('web')
    .description('serve the basin web page on this machine: drop two ONNX models, align, chart, merge and download, all in the browser (nothing is uploaded)')
    .option('--port <n>', 'TCP port (0: a free one)', parseIntOption('--port', 0, 65535), 8719)
    .option('--host <address>', 'address to listen on (127.0.0.1: this machine only)', parseNonEmpty('--host'), '127.0.0.1')
    .option('--open', 'open the page in the default browser')
    .action(
      action(async (o: { port: number; host: string; open?: boolean }) => {
        await checkWebFiles();
        const server = await startWebServer({ port: o.port, host: o.host });
        // Ctrl-C / SIGTERM close the server and end the command normally (handlers set before the URL is printed)
        const stopped = new Promise<void>((resolve) => {
          const stop = () => void server.close().then(resolve);
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        out(`${server.url}\n`);
        log(`basin web: serving the page at ${server.url} (Ctrl-C to stop); models you drop stay in the browser, nothing is uploaded`);
        if (o.host !== '127.0.0.1' && o.host !== 'localhost' && o.host !== '::1') log(`WARNING: listening on ${o.host}: other machines can load the page`);
        if (o.open) openBrowser(server.url);
        await stopped;
      }),
    );
}
