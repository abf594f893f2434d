//! Evidence that the store holds what the collector wrote, and nothing else:
//! digests listing every object with its SHA-256, chained by hash and signed
//! with Ed25519, and the walk that `verify` makes over them.
//!
//! - [`digest`]: the digest object, its name beside the state, and the
//!   entries the state keeps until they are sealed into one;
//! - [`signing`]: the signing key (`SIGNING_KEY_FILE`) and public keys;
//! - [`verify`]: the chain walk and its findings.

pub mod digest;
pub mod signing;
pub mod verify;

pub use digest::{Digest, DigestError, EntryKind, ObjectEntry};
pub use signing::{KeyError, PublicKey, SigningKey};
