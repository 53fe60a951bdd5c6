/**
 * One synth in a fresh process, as `cdk synth` runs an app: `node bench/synth-app.js <kind> <count> <outdir>`. Prints the
 * process's CPU time in milliseconds (user and system, from its start, so Node's own start and every `require` count).
 */
import { App } from 'aws-cdk-lib';
import { Kind, benchStack } from './apps';

const [kind, count, outdir] = process.argv.slice(2);
const app = new App({ outdir });
benchStack(app, kind as Kind, Number(count));
app.synth();
const cpu = process.cpuUsage();
process.stdout.write(`${(cpu.user + cpu.system) / 1000}\n`);
