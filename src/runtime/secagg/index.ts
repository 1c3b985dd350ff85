// Secure aggregation for federated rounds (Bonawitz et al. 2017; SecAgg+'s sparse graph, Bell et
// al. 2020): pure protocol objects over signed, serialisable messages. The caller carries the
// messages (the round's folder in the model store, HTTP); nothing here does I/O.
export {
  type AggregateResult,
  type AggregatorOptions,
  type Progress,
  SecAggAggregator,
} from './aggregator.ts';
export { type ClientOptions, type MaskedInputResult, SecAggClient } from './client.ts';
export { MAX_PARTICIPANTS, type Member, type RoundConfig } from './config.ts';
export { SecAggRefusedError, SecAggThresholdError } from './errors.ts';
export { type Identity, generateIdentity, sign, verify } from './identity.ts';
export { bytesOf, vectorFromBytes } from './mask.ts';
export type { Built } from './membership.ts';
export type {
  AdvertiseKeys,
  Envelope,
  KeyRoster,
  MaskedInput,
  MaskedInputHeader,
  ShareSet,
  ShareKeys,
  UnmaskRequest,
  UnmaskResponse,
} from './messages.ts';
export { PROTOCOL } from './messages.ts';
export { DEFAULT_QUANTIZATION, type Quantization, type Rounding } from './quantize.ts';
