export * from './chap-credentials';
export type { IscsiHostProps, IscsiHostWiring } from './host-wiring';
export { ChapCredentialsProvider } from './provider';
export type { ProviderRegistration } from './provider';
export { Attr, ChapMode, InitiatorProp, Prop, RESOURCE_TYPE, initiatorSecretNamePart } from './api';
export type { ChapPair, ChapResourceProperties, DeclaredInitiator, TargetSecretValue } from './api';
