use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::CredentialError;

/// How a confidential client proves who it is to the token endpoint.
#[derive(Clone)]
pub enum ClientCredential {
    /// Client secret sent as `client_secret` in the form body.
    Secret(SecretString),
    /// Client secret sent with HTTP Basic authentication (RFC 6749 §2.3.1).
    SecretBasic(SecretString),
    /// A certificate whose private key signs a client assertion JWT.
    Certificate(Arc<CertificateCredential>),
}

impl ClientCredential {
    /// When the credential stops working, if it can be known locally (a certificate's notAfter).
    /// A secret's expiry is only known to Entra, so it is `None`.
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self {
            ClientCredential::Certificate(certificate) => Some(certificate.not_after()),
            ClientCredential::Secret(_) | ClientCredential::SecretBasic(_) => None,
        }
    }
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("ClientCredential::Secret([redacted])"),
            ClientCredential::SecretBasic(_) => f.write_str("ClientCredential::SecretBasic([redacted])"),
            ClientCredential::Certificate(c) => {
                f.debug_tuple("ClientCredential::Certificate").field(c).finish()
            }
        }
    }
}

/// Signature scheme of the client assertion. Entra's current guidance is PS256 with `x5t#S256`;
/// RS256 with the SHA-1 `x5t` is what older app registrations and docs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    #[default]
    Ps256,
    Rs256,
}

/// The claims of a client assertion, as Entra expects them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub aud: String,
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub nbf: i64,
    pub iat: i64,
    pub exp: i64,
}

/// How long an assertion stays valid; Entra suggests 5–10 minutes.
const ASSERTION_LIFETIME: SignedDuration = SignedDuration::from_secs(10 * 60);

/// An X.509 certificate with its RSA private key, ready to sign client assertions.
pub struct CertificateCredential {
    certificate_der: Vec<u8>,
    key: EncodingKey,
    subject: String,
    not_before: Timestamp,
    not_after: Timestamp,
    algorithm: AssertionAlgorithm,
}

impl std::fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("subject", &self.subject)
            .field("x5t#S256", &self.thumbprint_sha256())
            .field("not_after", &self.not_after)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl CertificateCredential {
    /// From PEM text: the first certificate of `certificate_pem` and the private key in `key_pem`
    /// (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`). Both may be the same bundle.
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Self, CredentialError> {
        let certificate = CertificateDer::pem_slice_iter(certificate_pem)
            .next()
            .ok_or(CredentialError::NoCertificate)?
            .map_err(|e| CredentialError::BadCertificate(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => CredentialError::NoPrivateKey,
            other => CredentialError::BadPrivateKey(other.to_string()),
        })?;
        let encoding_key = match &key {
            PrivateKeyDer::Pkcs1(k) => EncodingKey::from_rsa_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => rsa_key_from_pkcs8(k.secret_pkcs8_der())?,
            PrivateKeyDer::Sec1(_) => {
                return Err(CredentialError::BadPrivateKey(
                    "an EC key; Entra app certificates need RSA".into(),
                ));
            }
            _ => return Err(CredentialError::BadPrivateKey("unsupported key format".into())),
        };
        Self::from_parts(certificate.as_ref().to_vec(), encoding_key)
    }

    /// From a single PEM bundle holding both the certificate and the key.
    pub fn from_pem_bundle(pem: &[u8]) -> Result<Self, CredentialError> {
        Self::from_pem(pem, pem)
    }

    /// From a PFX / PKCS#12 archive. The certificate that belongs to the private key is chosen,
    /// whatever order the archive lists its chain in.
    pub fn from_pfx(pfx: &[u8], password: &SecretString) -> Result<Self, CredentialError> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            pfx,
            password.expose_secret(),
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| CredentialError::BadPfx(e.to_string()))?;
        let mut saw_key = false;
        for (_, entry) in store.entries() {
            let p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) = entry else {
                continue;
            };
            saw_key = true;
            for certificate in chain.certs() {
                let key = rsa_key_from_pkcs8(chain.key().as_der())?;
                match Self::from_parts(certificate.as_der().to_vec(), key) {
                    Ok(credential) => return Ok(credential),
                    Err(CredentialError::KeyDoesNotMatchCertificate) => continue,
                    Err(other) => return Err(other),
                }
            }
        }
        Err(if saw_key {
            CredentialError::KeyDoesNotMatchCertificate
        } else {
            CredentialError::PfxWithoutKey
        })
    }

    /// Uses RS256 with the SHA-1 `x5t` header instead of PS256 with `x5t#S256`.
    pub fn with_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    fn from_parts(certificate_der: Vec<u8>, key: EncodingKey) -> Result<Self, CredentialError> {
        let (_, parsed) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| CredentialError::BadCertificate(e.to_string()))?;
        let validity = parsed.validity();
        let not_before = Timestamp::from_second(validity.not_before.timestamp())
            .map_err(|e| CredentialError::BadCertificate(format!("notBefore out of range: {e}")))?;
        let not_after = Timestamp::from_second(validity.not_after.timestamp())
            .map_err(|e| CredentialError::BadCertificate(format!("notAfter out of range: {e}")))?;
        let subject = parsed.subject().to_string();
        // For RSA, the SubjectPublicKeyInfo bit string is the PKCS#1 RSAPublicKey.
        let public_key = DecodingKey::from_rsa_der(&parsed.public_key().subject_public_key.data);
        let credential = CertificateCredential {
            certificate_der,
            key,
            subject,
            not_before,
            not_after,
            algorithm: AssertionAlgorithm::default(),
        };
        credential.check_key_matches(&public_key)?;
        Ok(credential)
    }

    /// Signs a probe and verifies it with the certificate's public key, so a mismatched key is
    /// reported when the connection is configured rather than as AADSTS700027 later.
    fn check_key_matches(&self, public_key: &DecodingKey) -> Result<(), CredentialError> {
        let probe = jsonwebtoken::encode(
            &Header::new(Algorithm::PS256),
            &serde_json::json!({"probe": 1}),
            &self.key,
        )
        .map_err(|e| CredentialError::BadPrivateKey(e.to_string()))?;
        let mut validation = Validation::new(Algorithm::PS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(&probe, public_key, &validation)
            .map(|_| ())
            .map_err(|_| CredentialError::KeyDoesNotMatchCertificate)
    }

    /// Builds and signs a client assertion for `client_id` addressed to the token endpoint `audience`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: Timestamp,
    ) -> Result<String, CredentialError> {
        let issued = now.as_second();
        let claims = AssertionClaims {
            aud: audience.to_string(),
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: issued,
            iat: issued,
            exp: issued + ASSERTION_LIFETIME.as_secs(),
        };
        let header = match self.algorithm {
            AssertionAlgorithm::Ps256 => {
                let mut header = Header::new(Algorithm::PS256);
                header.x5t_s256 = Some(self.thumbprint_sha256());
                header
            }
            AssertionAlgorithm::Rs256 => {
                let mut header = Header::new(Algorithm::RS256);
                header.x5t = Some(self.thumbprint_sha1());
                header
            }
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| CredentialError::Signing(e.to_string()))
    }

    /// `x5t#S256`: base64url of the SHA-256 of the DER certificate.
    pub fn thumbprint_sha256(&self) -> String {
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&self.certificate_der))
    }

    /// `x5t`: base64url of the SHA-1 of the DER certificate.
    pub fn thumbprint_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&self.certificate_der))
    }

    /// The SHA-1 thumbprint as the Entra portal shows it (upper-case hex).
    pub fn thumbprint_sha1_hex(&self) -> String {
        sha1::Sha1::digest(&self.certificate_der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn not_before(&self) -> Timestamp {
        self.not_before
    }

    /// When the certificate expires; shown to the user so it can be renewed in time.
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    pub fn algorithm(&self) -> AssertionAlgorithm {
        self.algorithm
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }
}

/// jsonwebtoken's aws-lc backend wants PKCS#1; its PEM reader unwraps PKCS#8, so go through PEM.
fn rsa_key_from_pkcs8(pkcs8_der: &[u8]) -> Result<EncodingKey, CredentialError> {
    let body = Zeroizing::new(STANDARD.encode(pkcs8_der));
    let mut pem = Zeroizing::new(String::with_capacity(body.len() + 80));
    pem.push_str("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| CredentialError::BadPrivateKey(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_thumbprint_encoding_matches_microsofts_example() {
        // Entra's documented example: hex 84E05C1D98BCE3A5421D225B140B36E86A3D5534 → hOBcHZi846VCHSJbFAs26Go9VTQ.
        let bytes: Vec<u8> = (0..20)
            .map(|i| {
                u8::from_str_radix(&"84E05C1D98BCE3A5421D225B140B36E86A3D5534"[i * 2..i * 2 + 2], 16).unwrap()
            })
            .collect();
        assert_eq!(URL_SAFE_NO_PAD.encode(bytes), "hOBcHZi846VCHSJbFAs26Go9VTQ");
    }

    #[test]
    fn missing_parts_are_reported() {
        assert!(matches!(
            CertificateCredential::from_pem(b"", b""),
            Err(CredentialError::NoCertificate)
        ));
        let secret: SecretString = "pw".into();
        assert!(matches!(
            CertificateCredential::from_pfx(b"not a pfx", &secret),
            Err(CredentialError::BadPfx(_))
        ));
    }
}
