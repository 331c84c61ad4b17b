//! Verification of Partner Center webhook deliveries.
//!
//! A delivery carries `Authorization: Signature <base64 RSA-SHA256 of the raw body>`,
//! `X-MS-Certificate-Url` and `X-MS-Signature-Algorithm: rsa-sha256`. A receiver checks the
//! certificate URL's host ([`WebhookVerifier::certificate_url`]), fetches the certificate
//! ([`fetch_certificate`]) and then, without further I/O, [`WebhookVerifier::verify`]s it: its
//! validity at `now`, its subject organisation, its chain to a trusted root, the signature over
//! the exact body bytes, and that the event's `ResourceChangeUtcDate` lies in the accepted window.
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::Timestamp;
use reqwest::header::HeaderMap;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use url::Url;

use crate::models::parse_date;

const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the delivery has no {0} header")]
    MissingHeader(&'static str),
    #[error("the Authorization header is not `Signature <base64>`")]
    MalformedSignature,
    #[error("signature algorithm {0:?} is not rsa-sha256")]
    UnsupportedAlgorithm(String),
    #[error("certificate URL refused: {0}")]
    CertificateUrl(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("the certificate is not trusted: {0}")]
    Untrusted(String),
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the event body is not a Partner Center event: {0}")]
    Body(String),
    #[error("the event is outside the accepted time window: {0}")]
    Stale(String),
    #[error("fetching the certificate: {0}")]
    Fetch(String),
}

/// A verified event (PascalCase on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookEvent {
    pub event_name: String,
    #[serde(default)]
    pub resource_uri: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub audit_uri: Option<String>,
    #[serde(default)]
    pub resource_change_utc_date: Option<String>,
}

impl WebhookEvent {
    /// `ResourceChangeUtcDate` as a timestamp (`None` if absent).
    pub fn changed_at(&self) -> Option<Timestamp> {
        self.resource_change_utc_date
            .as_deref()
            .and_then(|d| parse_date(d).ok().flatten())
    }
}

/// What a delivery must satisfy.
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    /// Hosts the certificate may be fetched from: an exact host, or a suffix starting with `.`.
    pub allowed_certificate_hosts: Vec<String>,
    /// Accept `http://` certificate URLs (the emulator without TLS only).
    pub allow_http_certificate_url: bool,
    /// DER certificates of the trusted roots (or pinned signing certificates).
    pub trusted_roots: Vec<Vec<u8>>,
    /// The organisation (`O=`) the signing certificate's subject must carry.
    pub required_organization: Option<String>,
    /// Oldest accepted `ResourceChangeUtcDate` (Partner Center may deliver up to 48 h late and retries).
    pub max_event_age: Duration,
    /// How far in the future an event date may be.
    pub max_clock_skew: Duration,
}

impl WebhookVerifier {
    /// A verifier trusting the roots in `roots_pem` (one or more PEM certificates), accepting
    /// certificates from Microsoft's domains signed for `Microsoft Corporation`.
    pub fn new(roots_pem: &str) -> Result<Self, WebhookError> {
        let roots: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(roots_pem.as_bytes())
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| WebhookError::Certificate(format!("trusted roots: {e}")))?;
        if roots.is_empty() {
            return Err(WebhookError::Certificate("no trusted root in the PEM".into()));
        }
        Ok(WebhookVerifier {
            allowed_certificate_hosts: vec![".microsoft.com".into(), ".windows.net".into()],
            allow_http_certificate_url: false,
            trusted_roots: roots,
            required_organization: Some("Microsoft Corporation".into()),
            max_event_age: Duration::from_secs(72 * 3600),
            max_clock_skew: Duration::from_secs(300),
        })
    }

    /// The certificate URL of a delivery, checked against the allowed hosts.
    pub fn certificate_url(&self, headers: &HeaderMap) -> Result<Url, WebhookError> {
        let raw = header(headers, "X-MS-Certificate-Url")
            .ok_or(WebhookError::MissingHeader("X-MS-Certificate-Url"))?;
        let url =
            Url::parse(raw.trim()).map_err(|e| WebhookError::CertificateUrl(format!("{raw:?}: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http_certificate_url => {}
            other => {
                return Err(WebhookError::CertificateUrl(format!(
                    "scheme {other} is not https"
                )));
            }
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self.allowed_certificate_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            match a.strip_prefix('.') {
                Some(suffix) => host == suffix || host.ends_with(&a),
                None => host == a,
            }
        });
        if !allowed {
            return Err(WebhookError::CertificateUrl(format!(
                "host {host} is not an allowed certificate host"
            )));
        }
        Ok(url)
    }

    /// Verifies a delivery against the certificate fetched from its certificate URL (DER or PEM).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        certificate: &[u8],
        now: Timestamp,
    ) -> Result<WebhookEvent, WebhookError> {
        let authorization =
            header(headers, "Authorization").ok_or(WebhookError::MissingHeader("Authorization"))?;
        let (scheme, signature) = authorization
            .trim()
            .split_once(' ')
            .ok_or(WebhookError::MalformedSignature)?;
        if !scheme.eq_ignore_ascii_case("Signature") {
            return Err(WebhookError::MalformedSignature);
        }
        let signature = STANDARD
            .decode(signature.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(signature.trim().trim_end_matches('=')))
            .map_err(|_| WebhookError::MalformedSignature)?;
        if let Some(alg) = header(headers, "X-MS-Signature-Algorithm")
            && !alg.trim().eq_ignore_ascii_case("rsa-sha256")
        {
            return Err(WebhookError::UnsupportedAlgorithm(alg.to_owned()));
        }
        let der = to_der(certificate)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| WebhookError::Certificate(format!("not an X.509 certificate: {e}")))?;
        let at = now.as_second();
        let validity = cert.validity();
        if at < validity.not_before.timestamp() || at > validity.not_after.timestamp() {
            return Err(WebhookError::Untrusted("the certificate is not valid now".into()));
        }
        if let Some(org) = &self.required_organization {
            let has = cert
                .subject()
                .iter_organization()
                .any(|o| o.as_str().is_ok_and(|s| s == org));
            if !has {
                return Err(WebhookError::Untrusted(format!(
                    "the subject's organisation is not {org}"
                )));
            }
        }
        self.check_chain(&cert, &der)?;
        let key = rsa_key(&cert)?;
        let ok = jsonwebtoken::crypto::verify(
            &URL_SAFE_NO_PAD.encode(&signature),
            body,
            &key,
            jsonwebtoken::Algorithm::RS256,
        )
        .map_err(|_| WebhookError::BadSignature)?;
        if !ok {
            return Err(WebhookError::BadSignature);
        }
        let event: WebhookEvent =
            serde_json::from_slice(body).map_err(|e| WebhookError::Body(e.to_string()))?;
        if let Some(raw) = &event.resource_change_utc_date {
            let when = parse_date(raw)
                .map_err(WebhookError::Body)?
                .ok_or_else(|| WebhookError::Body(format!("ResourceChangeUtcDate {raw:?} is a sentinel")))?;
            let age = now.duration_since(when);
            let skew =
                jiff::SignedDuration::try_from(self.max_clock_skew).unwrap_or(jiff::SignedDuration::ZERO);
            let max_age =
                jiff::SignedDuration::try_from(self.max_event_age).unwrap_or(jiff::SignedDuration::MAX);
            if age < -skew {
                return Err(WebhookError::Stale(format!("{raw} is in the future")));
            }
            if age > max_age {
                return Err(WebhookError::Stale(format!(
                    "{raw} is older than the accepted age"
                )));
            }
        }
        Ok(event)
    }

    /// [`WebhookVerifier::certificate_url`], [`fetch_certificate`] and [`WebhookVerifier::verify`]
    /// in one call (a receiver may cache certificates by URL and call `verify` itself instead).
    pub async fn verify_delivery(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<WebhookEvent, WebhookError> {
        let url = self.certificate_url(headers)?;
        let certificate = fetch_certificate(http, &url).await?;
        self.verify(headers, body, &certificate, now)
    }

    fn check_chain(
        &self,
        cert: &x509_parser::certificate::X509Certificate<'_>,
        der: &[u8],
    ) -> Result<(), WebhookError> {
        for root_der in &self.trusted_roots {
            if root_der.as_slice() == der {
                return Ok(());
            }
            let Ok((_, root)) = x509_parser::parse_x509_certificate(root_der) else {
                continue;
            };
            if root.subject().as_raw() != cert.issuer().as_raw() {
                continue;
            }
            if cert.signature_algorithm.algorithm.to_id_string() != SHA256_WITH_RSA {
                return Err(WebhookError::Untrusted(
                    "the certificate is not signed with sha256WithRSAEncryption".into(),
                ));
            }
            let key = rsa_key(&root)?;
            let signed = jsonwebtoken::crypto::verify(
                &URL_SAFE_NO_PAD.encode(&cert.signature_value.data),
                cert.tbs_certificate.as_ref(),
                &key,
                jsonwebtoken::Algorithm::RS256,
            )
            .unwrap_or(false);
            if signed {
                return Ok(());
            }
        }
        Err(WebhookError::Untrusted("no trusted root issued it".into()))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn to_der(bytes: &[u8]) -> Result<Vec<u8>, WebhookError> {
    if bytes.starts_with(b"-----BEGIN") {
        CertificateDer::from_pem_slice(bytes)
            .map(|c| c.as_ref().to_vec())
            .map_err(|e| WebhookError::Certificate(format!("PEM: {e}")))
    } else {
        Ok(bytes.to_vec())
    }
}

fn rsa_key(
    cert: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<jsonwebtoken::DecodingKey, WebhookError> {
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect::<Vec<u8>>();
            Ok(jsonwebtoken::DecodingKey::from_rsa_raw_components(
                &strip(rsa.modulus),
                &strip(rsa.exponent),
            ))
        }
        Ok(_) => Err(WebhookError::Certificate("the key is not RSA".into())),
        Err(e) => Err(WebhookError::Certificate(format!("public key: {e}"))),
    }
}

/// Fetches a certificate (at most 64 KiB) from a URL checked by [`WebhookVerifier::certificate_url`].
pub async fn fetch_certificate(http: &reqwest::Client, url: &Url) -> Result<Vec<u8>, WebhookError> {
    let response = http
        .get(url.clone())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| WebhookError::Fetch(e.to_string()))?;
    if !response.status().is_success() {
        return Err(WebhookError::Fetch(format!(
            "HTTP {}",
            response.status().as_u16()
        )));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| WebhookError::Fetch(e.to_string()))?;
    if bytes.len() > MAX_CERTIFICATE_BYTES {
        return Err(WebhookError::Fetch(
            "the certificate is larger than 64 KiB".into(),
        ));
    }
    Ok(bytes.to_vec())
}
