/** One synth in a fresh process, as `cdk synth` runs an app: `node bench/synth-app.js <kind> <count> <outdir>`. */
import { App } from 'aws-cdk-lib';
import { Kind, benchStack } from './apps';

const [kind, count, outdir] = process.argv.slice(2);
const app = new App({ outdir });
benchStack(app, kind as Kind, Number(count));
app.synth();
