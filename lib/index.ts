// The package's entry point, for TypeScript and for jsii. Classes, interfaces and enums exported here reach Python, Java,
// .NET and Go; module constants, free functions and @internal interfaces stay TypeScript only (README, Other languages).
export * from './chap-credentials';
export type { IscsiHostProps, IscsiHostWiring } from './host-wiring';
export { ChapCredentialsProvider } from './provider';
export type { ProviderRegistration } from './provider';
export { Attr, ChapMode, InitiatorProp, Prop, RESOURCE_TYPE, initiatorSecretNamePart } from './api';
export type { ChapPair, ChapResourceProperties, DeclaredInitiator, TargetSecretValue } from './api';
