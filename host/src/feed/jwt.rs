//! JWTs for a CDP API key: one fresh token per subscribe message.
//!
//! Coinbase hands out EC keys as SEC1 PEM (`BEGIN EC PRIVATE KEY`) and
//! Ed25519 keys as a base64 64-byte (seed ‖ public) string; PKCS#8 PEM works
//! for both. jsonwebtoken signs from PKCS#8 DER, so every form is converted
//! to that once, when the key is loaded.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use serde::Serialize;

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The private key is in no form we know; the message never quotes the key.
    #[error("the private key is not an EC (P-256) or Ed25519 key in PEM or base64 form: {0}")]
    Malformed(&'static str),
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A CDP key ready to sign WebSocket JWTs.
pub struct Credentials {
    key_name: String,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_name", &self.key_name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'static str,
    sub: &'a str,
    nbf: u64,
    exp: u64,
}

/// Token lifetime: Coinbase refuses longer ones.
pub const LIFETIME_SECS: u64 = 120;

impl Credentials {
    /// Load `private_key` (PEM, with real or `\n`-escaped newlines, or base64)
    /// for the key named `key_name` (`organizations/…/apiKeys/…`).
    pub fn new(key_name: &str, private_key: &str) -> Result<Self, JwtError> {
        let text = private_key.trim().replace("\\n", "\n");
        let (algorithm, der) = if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            let k = p256::SecretKey::from_sec1_pem(&text).map_err(|_| JwtError::Malformed("bad SEC1 EC key"))?;
            (Algorithm::ES256, pkcs8(k.to_pkcs8_der())?)
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            use ed25519_dalek::pkcs8::DecodePrivateKey as _;
            if let Ok(k) = p256::SecretKey::from_pkcs8_pem(&text) {
                (Algorithm::ES256, pkcs8(k.to_pkcs8_der())?)
            } else if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(&text) {
                (
                    Algorithm::EdDSA,
                    pkcs8(ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&k))?,
                )
            } else {
                return Err(JwtError::Malformed("PKCS#8 key that is neither P-256 nor Ed25519"));
            }
        } else {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| JwtError::Malformed("neither PEM nor base64"))?;
            let seed: [u8; 32] = match raw.len() {
                32 | 64 => raw[..32]
                    .try_into()
                    .map_err(|_| JwtError::Malformed("bad Ed25519 seed"))?,
                _ => return Err(JwtError::Malformed("a base64 Ed25519 key has 32 or 64 bytes")),
            };
            let k = ed25519_dalek::SigningKey::from_bytes(&seed);
            if raw.len() == 64 && k.verifying_key().as_bytes()[..] != raw[32..] {
                return Err(JwtError::Malformed("the Ed25519 public half does not match the seed"));
            }
            (
                Algorithm::EdDSA,
                pkcs8(ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&k))?,
            )
        };
        if key_name.trim().is_empty() {
            return Err(JwtError::Malformed("the key name is empty"));
        }
        Ok(Credentials {
            key_name: key_name.trim().to_string(),
            algorithm,
            key: match algorithm {
                Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
                _ => EncodingKey::from_ec_der(&der),
            },
        })
    }

    /// ES256 or EdDSA.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key name (`kid` and `sub`).
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// A fresh token: header `kid` + random `nonce`, claims `iss: cdp`, `sub`,
    /// `nbf` = now, `exp` = now + 120 s, and no `uri` (WebSocket tokens have none).
    pub fn token(&self, now_unix: u64) -> Result<String, JwtError> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".into());
        header.kid = Some(self.key_name.clone());
        header.nonce = Some(nonce());
        let claims = Claims {
            iss: "cdp",
            sub: &self.key_name,
            nbf: now_unix,
            exp: now_unix + LIFETIME_SECS,
        };
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}

fn pkcs8<E>(der: Result<p256::pkcs8::SecretDocument, E>) -> Result<Vec<u8>, JwtError> {
    der.map(|d| d.as_bytes().to_vec())
        .map_err(|_| JwtError::Malformed("cannot re-encode the key as PKCS#8"))
}

/// 16 random bytes as hex, like the official SDKs.
fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    const NAME: &str = "organizations/org-1/apiKeys/key-1";

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_issuer(&["cdp"]);
        v.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
        v.validate_nbf = true;
        v
    }

    fn check(creds: &Credentials, public: &DecodingKey) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let a = creds.token(now).unwrap();
        let b = creds.token(now).unwrap();
        assert_ne!(a, b, "every message gets a fresh token");
        let data = jsonwebtoken::decode::<serde_json::Value>(&a, public, &validation(creds.algorithm())).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some(NAME));
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        let nonce_a = data.header.nonce.clone().unwrap();
        let nonce_b = jsonwebtoken::decode_header(&b).unwrap().nonce.unwrap();
        assert_eq!(nonce_a.len(), 32);
        assert_ne!(nonce_a, nonce_b);
        let c = data.claims;
        assert_eq!(c["iss"], "cdp");
        assert_eq!(c["sub"], NAME);
        assert_eq!(c["nbf"], now);
        assert_eq!(c["exp"], now + 120);
        assert!(c.get("uri").is_none());
    }

    #[test]
    fn es256_from_a_sec1_pem_with_escaped_newlines() {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pem = secret.to_sec1_pem(LineEnding::LF).unwrap();
        let escaped = pem.replace('\n', "\\n");
        let creds = Credentials::new(NAME, &escaped).unwrap();
        assert_eq!(creds.algorithm(), Algorithm::ES256);
        let public = secret.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        check(&creds, &DecodingKey::from_ec_pem(public.as_bytes()).unwrap());
        // The same key as PKCS#8 PEM.
        let pk8 = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(Credentials::new(NAME, &pk8).unwrap().algorithm(), Algorithm::ES256);
        // A token signed by another key does not verify.
        let other = p256::SecretKey::from_slice(&[8u8; 32]).unwrap();
        let other_public = other.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let t = creds.token(1_900_000_000).unwrap();
        let mut v = validation(Algorithm::ES256);
        v.validate_exp = false;
        v.validate_nbf = false;
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                &t,
                &DecodingKey::from_ec_pem(other_public.as_bytes()).unwrap(),
                &v
            )
            .is_err()
        );
    }

    #[test]
    fn ed25519_from_base64_and_pkcs8() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let signing = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let mut raw = signing.to_bytes().to_vec();
        raw.extend_from_slice(signing.verifying_key().as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let creds = Credentials::new(NAME, &b64).unwrap();
        assert_eq!(creds.algorithm(), Algorithm::EdDSA);
        let public = signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        check(&creds, &DecodingKey::from_ed_pem(public.as_bytes()).unwrap());
        let pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let creds = Credentials::new(NAME, &pem).unwrap();
        assert_eq!(creds.algorithm(), Algorithm::EdDSA);
        check(&creds, &DecodingKey::from_ed_pem(public.as_bytes()).unwrap());
        // 64 bytes whose public half is not the seed's.
        raw[40] ^= 1;
        let bad = base64::engine::general_purpose::STANDARD.encode(&raw);
        assert!(matches!(Credentials::new(NAME, &bad), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn malformed_keys_are_clear_errors_that_never_quote_the_key() {
        for bad in [
            "",
            "hello",
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----",
            "c2hvcnQ=",
        ] {
            let e = Credentials::new(NAME, bad).unwrap_err().to_string();
            assert!(e.contains("private key"), "{e}");
            assert!(!e.contains("AAAA"));
        }
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pem = secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert!(Credentials::new(" ", &pem).is_err());
    }
}
