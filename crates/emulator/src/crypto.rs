//! Keys and certificates: the token-signing key (published in JWKS), app certificates for
//! client assertions, and the generated CA plus server certificate for TLS.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha1::Digest;

use crate::EmulatorError;
use crate::world::AppCertificate;

fn crypto_err(what: &str, e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Crypto(format!("{what}: {e}"))
}

/// The RSA key the emulated identity platform signs access tokens with.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// base64url modulus and exponent for the JWKS document.
    pub n: String,
    pub e: String,
    /// base64 DER of a self-signed certificate for the key (JWKS `x5c`).
    pub x5c: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn rsa_self_signed(common_name: &str) -> Result<(KeyPair, rcgen::Certificate), EmulatorError> {
    let key =
        KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| crypto_err("RSA key generation", e))?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| crypto_err("certificate", e))?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params
        .self_signed(&key)
        .map_err(|e| crypto_err("self-signed certificate", e))?;
    Ok((key, cert))
}

/// base64url SHA-1 and SHA-256 thumbprints of a DER certificate (`x5t`, `x5t#S256`).
pub fn thumbprints(der: &[u8]) -> (String, String) {
    let sha1 = sha1::Sha1::digest(der);
    let sha256 = sha2::Sha256::digest(der);
    (URL_SAFE_NO_PAD.encode(sha1), URL_SAFE_NO_PAD.encode(sha256))
}

/// RSA modulus and exponent (big-endian, no leading zeros) of a certificate's public key.
pub fn rsa_components_of_cert(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), EmulatorError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| crypto_err("certificate", e))?;
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect::<Vec<u8>>();
            Ok((strip(rsa.modulus), strip(rsa.exponent)))
        }
        Ok(_) => Err(EmulatorError::Crypto("the certificate's key is not RSA".into())),
        Err(e) => Err(crypto_err("certificate public key", e)),
    }
}

pub fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, EmulatorError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.as_ref().to_vec())
        .map_err(|e| crypto_err("certificate PEM", e))
}

pub fn generate_signing_key() -> Result<SigningKey, EmulatorError> {
    let (key, cert) = rsa_self_signed("emulated token signing")?;
    let der = cert.der().as_ref().to_vec();
    let (n, e) = rsa_components_of_cert(&der)?;
    let (x5t, _) = thumbprints(&der);
    // The PEM path turns rcgen's PKCS#8 into the PKCS#1 form the signer expects.
    let encoding = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())
        .map_err(|e| crypto_err("signing key", e))?;
    Ok(SigningKey {
        kid: x5t,
        encoding,
        decoding: DecodingKey::from_rsa_raw_components(&n, &e),
        n: URL_SAFE_NO_PAD.encode(&n),
        e: URL_SAFE_NO_PAD.encode(&e),
        x5c: STANDARD.encode(&der),
    })
}

/// A fresh self-signed RSA certificate for an app registration (with its private key).
pub fn generate_app_certificate(name: &str, key_id: String) -> Result<AppCertificate, EmulatorError> {
    let (key, cert) = rsa_self_signed(name)?;
    let der = cert.der().as_ref().to_vec();
    let (x5t, x5t_s256) = thumbprints(&der);
    let sha1_hex: String = sha1::Sha1::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok(AppCertificate {
        key_id,
        certificate_pem: cert.pem(),
        private_key_pem: key.serialize_pem(),
        thumbprint_sha1: sha1_hex,
        x5t_s256,
        x5t,
        end_date_time: "2099-01-01T00:00:00Z"
            .parse()
            .map_err(|e| crypto_err("date", e))?,
    })
}

/// A CA and a server certificate signed by it, for serving HTTPS on loopback.
pub struct TlsMaterial {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

pub fn generate_tls(hosts: &[String]) -> Result<TlsMaterial, EmulatorError> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| crypto_err("CA key generation", e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| crypto_err("CA", e))?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "deskbridge emulator CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| crypto_err("CA certificate", e))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| crypto_err("server key generation", e))?;
    let mut params =
        CertificateParams::new(hosts.to_vec()).map_err(|e| crypto_err("server certificate", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "deskbridge emulator");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(|e| crypto_err("server certificate", e))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crypto_err("TLS config", e))?
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .map_err(|e| crypto_err("TLS config", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}
