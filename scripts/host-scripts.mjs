// Compresses the body of lib/host/connect-linux.sh (everything after its values block) into
// lib/host/connect-linux.body.gz.b64 (without comment lines), which wireHost puts into the Linux boot commands: the script is about 20 KB and
// EC2 user data holds 16 KB. Run after editing the script (`npm run host-scripts`); a test checks the file is fresh.
// The file is committed, so an app's template never depends on the zlib of the machine that synthesizes it.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { compactShell } from '../lib/host-wiring.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'host');
const script = readFileSync(join(dir, 'connect-linux.sh'), 'utf8');
const marker = '# <<< values\n';
// Without its comment lines (lib/host-wiring.ts compactShell, compiled by `npm run host-scripts`).
const body = compactShell(script.slice(script.indexOf(marker) + marker.length));
const gzip = gzipSync(body, { level: 9 });
gzip[9] = 255; // the gzip header's operating system: "unknown", whatever machine compressed it
const text = gzip.toString('base64').match(/.{1,76}/g).join('\n') + '\n';
writeFileSync(join(dir, 'connect-linux.body.gz.b64'), text);
console.log(`lib/host/connect-linux.body.gz.b64: ${Buffer.byteLength(body)} bytes of script in ${text.length} bytes`);

// The same for lib/host/rotate-windows.ps1, the Windows rotation task that rotating constructs' Windows commands write.
const rotate = readFileSync(join(dir, 'rotate-windows.ps1'), 'utf8');
const rotateBody = rotate.slice(rotate.indexOf(marker) + marker.length);
const rotateGzip = gzipSync(rotateBody, { level: 9 });
rotateGzip[9] = 255;
const rotateText = rotateGzip.toString('base64').match(/.{1,76}/g).join('\n') + '\n';
writeFileSync(join(dir, 'rotate-windows.body.gz.b64'), rotateText);
console.log(`lib/host/rotate-windows.body.gz.b64: ${Buffer.byteLength(rotateBody)} bytes of script in ${rotateText.length} bytes`);
