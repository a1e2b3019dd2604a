//! [`AppState`]: what every request handler, timer and the sweep can reach,
//! and the few operations that must always go together — a state change is
//! committed by the store, then published on the hub, then (on redemption)
//! its consent timer is armed. Routes call these rather than the store, so
//! no change is ever left unannounced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_assist_protocol::VisitorView;
use axum::http::HeaderName;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{Config, SiteTimeZone};
use crate::hub::{Hub, LocalHub};
use crate::identity;
use crate::mirror::capture::Capture;
use crate::mirror::Mirrors;
use crate::secrets::{new_stream_ticket, ticket_key, STREAM_TICKET_TTL_SECS};
use crate::server::{Drain, HttpLimits};
use crate::store::sqlite::SqliteStore;
use crate::store::{Change, Session, SessionEvent, SessionUpdate, Store, StoreError};
use crate::timers;

/// What every request handler can reach. Cloning is cheap (`Arc`s and
/// plain values, no allocation).
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub hub: Arc<dyn Hub>,
    /// Set to `true` when the broker begins to shut down: event streams and
    /// timers watch it and end, so a graceful shutdown does not wait for
    /// streams that would otherwise stay open for as long as a session.
    closing: Arc<watch::Sender<bool>>,
    /// Static pages served at `/`, if any. (`Arc<Path>`, not `PathBuf`:
    /// the state is cloned several times per request, and a `PathBuf`
    /// clone is an allocation.)
    pub www_dir: Option<Arc<Path>>,
    /// The script-tag bundle served at `/sdk/`, if any.
    pub sdk_dir: Option<Arc<Path>>,
    /// Integration examples served at `/examples/`, if any (the demo's).
    pub examples_dir: Option<Arc<Path>>,
    /// Whether `POST /demo/login` signs identities for made-up users
    /// (`serve --demo-login`; never in production).
    pub demo_login: bool,
    /// The live mirror of each active session (in memory only).
    pub mirrors: Arc<Mirrors>,
    /// Where every frame the mirror sockets receive is appended
    /// (`serve --mirror-capture`), if anywhere.
    pub mirror_capture: Option<Arc<Capture>>,
    /// The HTTP server's time limits (see [`crate::server`]).
    pub http: HttpLimits,
    /// Requests in flight, and whether the broker is draining.
    pub drain: Arc<Drain>,
    /// The header a trusted proxy puts the client's address in
    /// (`serve --client-ip-header`); without one, the connection's peer.
    pub client_ip_header: Option<HeaderName>,
    /// Each site's live codes as last counted, plus the codes issued since:
    /// tells when a code request must count the site's live codes exactly
    /// (see [`crate::routes::codes::SITE_COUNT_MARGIN`]).
    pub site_codes: Arc<SiteCodes>,
}

/// Live codes per site, counted by the sweep and raised by every code
/// issued in between (so it errs high, never low, until the next count).
#[derive(Debug, Default)]
pub struct SiteCodes(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl SiteCodes {
    /// The site's live codes as far as is known.
    pub fn get(&self, site_key: &str) -> u64 {
        self.lock().get(site_key).copied().unwrap_or(0)
    }

    /// One more code issued for the site.
    pub fn add_one(&self, site_key: &str) {
        *self.lock().entry(site_key.to_owned()).or_default() += 1;
    }

    /// The count the store just made.
    pub fn set(&self, site_key: &str, live: u64) {
        self.lock().insert(site_key.to_owned(), live);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u64>> {
        // A panic while holding the lock leaves only a number behind.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl AppState {
    /// State over any store, with the in-process hub.
    pub fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            config: Arc::new(config),
            store,
            clock,
            hub: Arc::new(LocalHub::new()),
            closing: Arc::new(watch::channel(false).0),
            www_dir: None,
            sdk_dir: None,
            examples_dir: None,
            demo_login: false,
            mirrors: Arc::new(Mirrors::new()),
            mirror_capture: None,
            http: HttpLimits::default(),
            drain: Arc::new(Drain::default()),
            client_ip_header: None,
            site_codes: Arc::new(SiteCodes::default()),
        }
    }

    /// State over the SQLite file at `db_path`, created if it does not exist.
    pub fn open(config: Config, db_path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let store = SqliteStore::open(db_path)?;
        Ok(Self::new(config, Arc::new(store), clock))
    }

    /// Announces events on `hub` instead of the in-process one.
    #[must_use]
    pub fn with_hub(mut self, hub: Arc<dyn Hub>) -> Self {
        self.hub = hub;
        self
    }

    /// Shares events and the live mirror with the other replicas on the
    /// Redis at `url` (as `serve --store redis://…` does).
    pub async fn with_redis_replicas(self, url: &str) -> Result<Self, StoreError> {
        let hub = crate::hub::RedisHub::start(url, Arc::clone(&self.store)).await?;
        let relay = crate::mirror::relay::Relay::start(url, &self.mirrors).await?;
        self.mirrors.set_relay(relay);
        Ok(self.with_hub(hub))
    }

    /// Also serve the static pages in `dir` at `/`.
    #[must_use]
    pub fn with_www(mut self, dir: impl Into<PathBuf>) -> Self {
        self.www_dir = Some(Arc::from(dir.into()));
        self
    }

    /// Also serve the script-tag bundle in `dir` at `/sdk/`.
    #[must_use]
    pub fn with_sdk(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sdk_dir = Some(Arc::from(dir.into()));
        self
    }

    /// Also serve the integration examples in `dir` at `/examples/`.
    #[must_use]
    pub fn with_examples(mut self, dir: impl Into<PathBuf>) -> Self {
        self.examples_dir = Some(Arc::from(dir.into()));
        self
    }

    /// Enables `POST /demo/login` (demo only; see [`crate::routes::demo`]).
    #[must_use]
    pub fn with_demo_login(mut self, enabled: bool) -> Self {
        self.demo_login = enabled;
        self
    }

    /// Appends every frame the mirror sockets receive to `capture`
    /// (privacy audits and tests; see [`crate::mirror::capture`]).
    #[must_use]
    pub fn with_mirror_capture(mut self, capture: Capture) -> Self {
        self.mirror_capture = Some(Arc::new(capture));
        self
    }

    /// Takes clients' addresses from `header` (set by a trusted proxy).
    #[must_use]
    pub fn with_client_ip_header(mut self, header: Option<HeaderName>) -> Self {
        self.client_ip_header = header;
        self
    }

    /// Serves with these time limits instead of the defaults.
    #[must_use]
    pub fn with_http_limits(mut self, limits: HttpLimits) -> Self {
        self.http = limits;
        self
    }

    /// The visitor of session `session_id` of `site_key` as the agent sees
    /// them: record, display name in the site's time zone, and newest
    /// tickets. `None` when no session has this id.
    pub async fn visitor_view(
        &self,
        session_id: &str,
        site_key: &str,
    ) -> Result<Option<VisitorView>, StoreError> {
        let history = self
            .store
            .visitor(session_id, identity::MAX_TICKETS, self.clock.now_ms())
            .await?;
        // A site removed from the configuration keeps its visitors readable
        // (in UTC) until its sessions are gone.
        let utc = SiteTimeZone::utc();
        let zone = self
            .config
            .site(site_key)
            .map_or(&utc, |site| &site.time_zone);
        Ok(history.map(|h| identity::view(h, zone.zone())))
    }

    /// The id of the session holding `code` for `site_key`, if the code is
    /// live now (by this state's clock).
    pub async fn find_live_code(
        &self,
        site_key: &str,
        code: &str,
    ) -> Result<Option<String>, StoreError> {
        self.store
            .find_live_code(site_key, code, self.clock.now_ms())
            .await
    }

    /// The session with this id as it is now, any due timeout applied (and
    /// announced).
    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let update = self.store.session(id, self.clock.now_ms()).await?;
        Ok(update.map(|u| {
            self.publish(&u.events);
            u.session
        }))
    }

    /// Applies `change` to the session (see [`Store::apply`]), announces what
    /// was committed, and arms the consent timer when the session has just
    /// entered `authorizing`.
    pub async fn apply(
        &self,
        id: &str,
        change: Change,
    ) -> Result<Option<SessionUpdate>, StoreError> {
        let redeem = matches!(change, Change::Redeem { .. });
        let update = self.store.apply(id, change, self.clock.now_ms()).await?;
        if let Some(u) = &update {
            self.publish(&u.events);
            if redeem && u.refused.is_none() {
                if let Some(deadline) = u.session.consent_expires_at {
                    timers::arm_consent_timer(self, u.session.id.clone(), deadline);
                }
            }
        }
        Ok(update)
    }

    /// Applies every timeout that is due now (by this state's clock), and
    /// forgets expired tickets and old failures; returns the events. The
    /// broker runs this periodically; tests call it after moving the clock.
    pub async fn sweep(&self) -> Result<Vec<SessionEvent>, StoreError> {
        let now = self.clock.now_ms();
        let events = self.store.sweep_expired(now).await?;
        self.publish(&events);
        self.hub.prune();
        for site in self.config.sites() {
            if site.create_limits.site_live > 0 {
                let live = self.store.count_live_codes(&site.key, now).await?;
                self.site_codes.set(&site.key, live);
            }
        }
        Ok(events)
    }

    /// A new stream ticket for the session; returns it in clear (the store
    /// keeps its hash) with its lifetime in seconds.
    pub async fn issue_ticket(&self, session_id: &str) -> Result<String, StoreError> {
        let ticket = new_stream_ticket();
        let expires_at = self.clock.now_ms() + u64::from(STREAM_TICKET_TTL_SECS) * 1000;
        self.store
            .create_ticket(session_id, ticket_key(&ticket), expires_at)
            .await?;
        Ok(ticket)
    }

    /// Announces committed events.
    pub fn publish(&self, events: &[SessionEvent]) {
        for event in events {
            self.hub.publish(event);
        }
    }

    /// Tells streams and timers that the broker is shutting down.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Completes once [`AppState::close`] has been called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            // An error means the sender is gone, which is closing too.
            let _ = closing.wait_for(|c| *c).await;
        }
    }
}
