//! Ed25519 keys: the private key that signs digests, read from a PKCS#8 PEM
//! file, and public keys that check them. A key is named by its
//! fingerprint, `sha256:` and the hex SHA-256 of its DER SubjectPublicKeyInfo,
//! which `openssl pkey -pubin -outform DER | sha256sum` reproduces.

use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest as _, Sha256};

/// How to make a key, for error messages.
const MAKE_KEY: &str = "make one with `openssl genpkey -algorithm ed25519 -out signing-key.pem` and publish \
    its public half from `openssl pkey -in signing-key.pem -pubout`";

/// A key file that cannot be used. Messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read the {what} `{path}`: {source}")]
    Unreadable {
        /// Which key.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a key of the expected kind.
    #[error("the {what} `{path}` is not {expected} ({reason}); {MAKE_KEY}")]
    NotAKey {
        /// Which key.
        what: &'static str,
        /// The file.
        path: String,
        /// What was expected.
        expected: &'static str,
        /// The parser's words, which quote no key material.
        reason: String,
    },
}

/// The fingerprint of a public key.
fn fingerprint(key: &ed25519_dalek::VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("an Ed25519 public key always encodes");
    let hash = Sha256::digest(der.as_bytes());
    format!("sha256:{}", hex::encode(hash))
}

/// What a key file must hold.
struct Expected {
    /// Which key, for messages.
    what: &'static str,
    /// Its PEM block's first line.
    label: &'static str,
    /// The kind of key, for messages.
    kind: &'static str,
}

/// Reads the PEM file at `path` and parses it with `parse`; errors name the
/// file and never quote it.
fn read_key<T, E: std::fmt::Display>(
    path: &Path,
    expected: &Expected,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, KeyError> {
    let pem = std::fs::read_to_string(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|source| KeyError::Unreadable {
            what: expected.what,
            path: path.display().to_string(),
            source,
        })?;
    let not_a_key = |reason: String| KeyError::NotAKey {
        what: expected.what,
        path: path.display().to_string(),
        expected: expected.kind,
        reason,
    };
    if !pem.contains(expected.label) {
        return Err(not_a_key(format!("it holds no `{}` block", expected.label)));
    }
    parse(&pem).map_err(|e| not_a_key(e.to_string()))
}

/// The private key that signs digests. It never prints itself.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    fingerprint: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PKCS#8 PEM Ed25519 private key (`BEGIN PRIVATE KEY`).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        const EXPECTED: Expected = Expected {
            what: "signing key",
            label: "-----BEGIN PRIVATE KEY-----",
            kind: "a PKCS#8 PEM Ed25519 private key",
        };
        let key = read_key(path, &EXPECTED, ed25519_dalek::SigningKey::from_pkcs8_pem)?;
        let fingerprint = fingerprint(&key.verifying_key());
        Ok(Self { key, fingerprint })
    }

    /// `sha256:` and the hex SHA-256 of the public key's DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A public key that checks digest signatures.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    fingerprint: String,
}

impl PublicKey {
    /// Reads a PEM Ed25519 public key (`BEGIN PUBLIC KEY`).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        const EXPECTED: Expected = Expected {
            what: "public key (--public-key)",
            label: "-----BEGIN PUBLIC KEY-----",
            kind: "a PEM Ed25519 public key",
        };
        let key = read_key(
            path,
            &EXPECTED,
            ed25519_dalek::VerifyingKey::from_public_key_pem,
        )?;
        let fingerprint = fingerprint(&key);
        Ok(Self { key, fingerprint })
    }

    /// `sha256:` and the hex SHA-256 of the key's DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        ed25519_dalek::Signature::from_slice(signature)
            .is_ok_and(|s| self.key.verify(message, &s).is_ok())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use ed25519_dalek::pkcs8::EncodePrivateKey;

    /// Key pair `n`, written as PEM files in `dir` and read back.
    pub(crate) fn keys(dir: &Path, n: u8) -> (SigningKey, PublicKey) {
        let made = ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
        let private = dir.join(format!("key-{n}.pem"));
        let pem = made.to_pkcs8_pem(Default::default()).unwrap();
        std::fs::write(&private, pem.as_bytes()).unwrap();
        let public = dir.join(format!("pub-{n}.pem"));
        let pem = made
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        std::fs::write(&public, pem).unwrap();
        (
            SigningKey::from_file(&private).unwrap(),
            PublicKey::from_file(&public).unwrap(),
        )
    }

    #[test]
    fn a_signature_checks_with_its_public_half_only() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keys(dir.path(), 7);
        let (_, other) = keys(dir.path(), 8);
        assert_ne!(other.fingerprint(), key.fingerprint());
        assert_eq!(public.fingerprint(), key.fingerprint());
        assert!(key.fingerprint().starts_with("sha256:") && key.fingerprint().len() == 71);
        let signature = key.sign(b"digest");
        assert!(public.verifies(b"digest", &signature));
        assert!(!public.verifies(b"digest!", &signature));
        assert!(!public.verifies(b"digest", &signature[..63]));
        assert!(!other.verifies(b"digest", &signature));
        let shown = format!("{key:?}");
        assert!(
            shown.contains(key.fingerprint()) && !shown.contains("0707"),
            "{shown}"
        );
    }

    #[test]
    fn a_file_that_is_no_key_is_named_and_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-key.pem");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXRleHQ=\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = SigningKey::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("not-a-key.pem") && err.contains("PKCS#8 PEM Ed25519"),
            "{err}"
        );
        assert!(
            !err.contains("c2VjcmV0") && !err.contains("secret-text"),
            "{err}"
        );
        let err = PublicKey::from_file(&dir.path().join("absent.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read the public key") && err.contains("absent.pem"),
            "{err}"
        );
    }
}
