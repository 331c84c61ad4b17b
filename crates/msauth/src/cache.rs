use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use deskbridge_core::SharedClock;
use jiff::{SignedDuration, Timestamp};

use crate::{AccessToken, AuthError};

/// Default time before expiry at which a cached token is replaced.
pub const DEFAULT_REFRESH_MARGIN: SignedDuration = SignedDuration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct Cached {
    token: AccessToken,
    fetched_at: Timestamp,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Access tokens per (tenant, scope), renewed before they expire, with single flight: concurrent
/// callers for the same key wait for one request instead of each sending their own.
#[derive(Debug)]
pub struct TokenCache {
    clock: SharedClock,
    refresh_margin: SignedDuration,
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl TokenCache {
    pub fn new(clock: SharedClock) -> Self {
        TokenCache {
            clock,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Replace tokens this long before `expires_at` (capped at half a token's lifetime, so very
    /// short-lived tokens are still reused).
    pub fn with_refresh_margin(mut self, margin: SignedDuration) -> Self {
        self.refresh_margin = margin;
        self
    }

    fn slot(&self, tenant: &str, scope: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .entry((tenant.to_string(), scope.to_string()))
            .or_default()
            .clone()
    }

    /// Returns the cached token for the key if still fresh, otherwise runs `fetch` (once, however
    /// many callers are waiting) and caches its result. Failures are not cached.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        tenant: &str,
        scope: &str,
        fetch: F,
    ) -> Result<AccessToken, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, AuthError>>,
    {
        let slot = self.slot(tenant, scope);
        let mut cached = slot.lock().await;
        let now = self.clock.now();
        if let Some(entry) = cached.as_ref()
            && self.is_fresh(entry, now)
        {
            return Ok(entry.token.clone());
        }
        let token = fetch().await?;
        *cached = Some(Cached {
            token: token.clone(),
            fetched_at: now,
        });
        Ok(token)
    }

    /// Forgets a token (e.g. after Graph answered 401) so the next call fetches a new one.
    pub async fn invalidate(&self, tenant: &str, scope: &str) {
        let slot = self.slot(tenant, scope);
        *slot.lock().await = None;
    }

    fn is_fresh(&self, entry: &Cached, now: Timestamp) -> bool {
        let lifetime = entry.token.expires_at().duration_since(entry.fetched_at);
        let margin = self.refresh_margin.min(lifetime / 2);
        entry.token.is_fresh(now, margin)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use deskbridge_core::{Clock, ManualClock};

    use super::*;

    fn token_until(expires_at: Timestamp, label: &str) -> AccessToken {
        AccessToken::new(label.to_string().into(), expires_at)
    }

    #[tokio::test]
    async fn reuses_until_the_margin_then_refetches() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let cache = TokenCache::new(clock.clone());
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            Ok(token_until(
                clock.now() + SignedDuration::from_secs(3600),
                &format!("t{n}"),
            ))
        };
        assert_eq!(cache.get_or_fetch("t", "s", fetch).await.unwrap().bearer(), "t0");
        clock.advance(SignedDuration::from_mins(54));
        assert_eq!(cache.get_or_fetch("t", "s", fetch).await.unwrap().bearer(), "t0");
        clock.advance(SignedDuration::from_mins(2)); // 4 minutes left < 5 minute margin
        assert_eq!(cache.get_or_fetch("t", "s", fetch).await.unwrap().bearer(), "t1");
        assert_eq!(
            cache
                .get_or_fetch("other-tenant", "s", fetch)
                .await
                .unwrap()
                .bearer(),
            "t2"
        );
        cache.invalidate("t", "s").await;
        assert_eq!(cache.get_or_fetch("t", "s", fetch).await.unwrap().bearer(), "t3");
    }

    #[tokio::test]
    async fn short_lived_tokens_are_still_reused() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let cache = TokenCache::new(clock.clone());
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(token_until(clock.now() + SignedDuration::from_secs(120), "short"))
        };
        cache.get_or_fetch("t", "s", fetch).await.unwrap();
        clock.advance(SignedDuration::from_secs(30));
        cache.get_or_fetch("t", "s", fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let clock = Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()));
        let cache = TokenCache::new(clock);
        let failing = || async { Err(AuthError::Configuration("boom".into())) };
        assert!(cache.get_or_fetch("t", "s", failing).await.is_err());
        let ok = || async { Ok(token_until("2026-01-01T01:00:00Z".parse().unwrap(), "ok")) };
        assert_eq!(cache.get_or_fetch("t", "s", ok).await.unwrap().bearer(), "ok");
    }
}
