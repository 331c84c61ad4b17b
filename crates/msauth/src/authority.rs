use url::Url;

use crate::AuthError;

/// The public cloud's sign-in host.
pub const PUBLIC_CLOUD_AUTHORITY: &str = "https://login.microsoftonline.com";

/// The scope for app-only Microsoft Graph tokens.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The sign-in host (`https://login.microsoftonline.com`, a national cloud's, or the emulator's).
/// Only the host differs between clouds: paths are always `/{tenant}/oauth2/v2.0/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    base: Url,
}

impl Default for Authority {
    fn default() -> Self {
        Self::public_cloud()
    }
}

impl Authority {
    #[allow(clippy::expect_used)] // a constant URL: it parses, as the tests show
    pub fn public_cloud() -> Self {
        Authority {
            base: Url::parse(PUBLIC_CLOUD_AUTHORITY).expect("the public cloud authority parses"),
        }
    }

    /// Parses an authority host such as `https://login.microsoftonline.us` or `http://127.0.0.1:8080`
    /// (a path prefix is kept, a query or fragment is refused).
    pub fn new(authority: &str) -> Result<Self, AuthError> {
        let mut base = Url::parse(authority.trim())
            .map_err(|e| AuthError::Configuration(format!("authority {authority:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "https" | "http") || base.host().is_none() {
            return Err(AuthError::Configuration(format!(
                "authority {authority:?} must be an http(s) URL"
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(AuthError::Configuration(format!(
                "authority {authority:?} must not have a query"
            )));
        }
        let trimmed = base.path().trim_end_matches('/').to_string();
        base.set_path(&trimmed);
        Ok(Authority { base })
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`; also the `aud` of client assertions.
    pub fn token_endpoint(&self, tenant: &str) -> Result<Url, AuthError> {
        self.endpoint(tenant, "token")
    }

    /// `{authority}/{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize_endpoint(&self, tenant: &str) -> Result<Url, AuthError> {
        self.endpoint(tenant, "authorize")
    }

    /// `{authority}/{tenant}/v2.0/adminconsent`: where an administrator of `tenant` grants a
    /// multi-tenant app the application permissions it was registered with.
    pub fn admin_consent_endpoint(&self, tenant: &str) -> Result<Url, AuthError> {
        validate_tenant(tenant)?;
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|_| {
                AuthError::Configuration(format!("authority {} cannot carry a path", self.base))
            })?;
            segments.pop_if_empty().extend([tenant, "v2.0", "adminconsent"]);
        }
        Ok(url)
    }

    pub fn as_str(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn endpoint(&self, tenant: &str, leaf: &str) -> Result<Url, AuthError> {
        validate_tenant(tenant)?;
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|_| {
                AuthError::Configuration(format!("authority {} cannot carry a path", self.base))
            })?;
            segments.pop_if_empty().extend([tenant, "oauth2", "v2.0", leaf]);
        }
        Ok(url)
    }
}

/// A tenant is a GUID, a verified domain, or `common` / `organizations` / `consumers`; anything that
/// would change the URL's path is refused rather than encoded.
fn validate_tenant(tenant: &str) -> Result<(), AuthError> {
    let valid = !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if valid {
        Ok(())
    } else {
        Err(AuthError::Configuration(format!(
            "tenant {tenant:?} is not a tenant id or domain"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_host_and_any_prefix() {
        let public = Authority::public_cloud();
        assert_eq!(
            public.token_endpoint("contoso.onmicrosoft.com").unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let emulator = Authority::new("http://127.0.0.1:9000/login/").unwrap();
        assert_eq!(
            emulator.authorize_endpoint("organizations").unwrap().as_str(),
            "http://127.0.0.1:9000/login/organizations/oauth2/v2.0/authorize"
        );
        assert_eq!(emulator.as_str(), "http://127.0.0.1:9000/login");
        assert_eq!(
            emulator.admin_consent_endpoint("contoso.com").unwrap().as_str(),
            "http://127.0.0.1:9000/login/contoso.com/v2.0/adminconsent"
        );
        assert!(emulator.admin_consent_endpoint("a/b").is_err());
    }

    #[test]
    fn bad_authorities_and_tenants_are_refused() {
        assert!(Authority::new("login.microsoftonline.com").is_err());
        assert!(Authority::new("ftp://x").is_err());
        assert!(Authority::new("https://x/?a=b").is_err());
        let public = Authority::public_cloud();
        for tenant in ["", "a/b", "x?y", "../etc"] {
            assert!(public.token_endpoint(tenant).is_err(), "{tenant}");
        }
    }
}
