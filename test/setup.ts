// aws-cdk-lib's built-in CloudFormation template validation (WASM) costs about 3 s per synth. The tests synthesize
// hundreds of times, so it is off here; test/cfn-validation.test.ts turns it on, strictly, for our templates.
process.env.CDK_VALIDATION = 'false';
