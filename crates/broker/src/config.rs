//! The command line and the site configuration file.
//!
//! The site file is TOML with one `[[site]]` table per website that embeds the
//! widget. It is checked completely at start-up: a broker that starts is a
//! broker whose every site is usable, and a mistake is reported with the file
//! and the field it is in rather than discovered by a visitor.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use agent_assist_protocol::mirror::check_page_pattern;
use agent_assist_protocol::AuthMode;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// Code lifetime used when a site does not set `code_lifetime_secs`: 20 minutes.
pub const DEFAULT_CODE_LIFETIME_SECS: u32 = 1200;

/// Longest code lifetime a site may configure: one day. A code that lives
/// longer only widens the window in which it can be guessed. The protocol
/// holds the number, so clients refuse an answer claiming more.
pub use agent_assist_protocol::MAX_CODE_LIFETIME_SECS;

/// Longest site key accepted, in bytes.
const MAX_SITE_KEY_LEN: usize = 64;

/// How long an `authorizing` session waits for the visitor's answer when a
/// site does not set `consent_timeout_secs`: two minutes.
pub const DEFAULT_CONSENT_TIMEOUT_SECS: u32 = 120;

/// The range a site's `consent_timeout_secs` must be in. Under ten seconds a
/// visitor cannot read the prompt; over an hour the agent has long gone.
pub const CONSENT_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 10..=3600;

/// Shortest site secret accepted, in characters. The secret keys HMAC-SHA256
/// signatures, so it should carry at least as many bits as the hash.
pub const MIN_SECRET_LEN: usize = 32;

/// Longest failure window a site may configure: one day, the span the broker
/// keeps failed redemptions for.
pub const MAX_LIMIT_WINDOW_SECS: u32 = 86_400;

/// The pages a site shares in the live mirror when it does not set
/// `share_pages`: all of them.
pub const DEFAULT_SHARE_PAGES: &[&str] = &["/*"];

/// `agent-assist-broker`: the command line.
#[derive(Debug, Parser)]
#[command(name = "agent-assist-broker", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What the broker binary can be asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and, optionally, the static pages and the SDK bundle).
    Serve(ServeArgs),
    /// Manage the agents who may redeem codes with a broker-issued API token.
    #[command(subcommand)]
    Agents(AgentsCommand),
}

/// `agent-assist-broker agents …`.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Add an agent to a site and print its API token (shown only this once).
    Add(AgentsAddArgs),
    /// List the agents (never their tokens).
    List(AgentsListArgs),
    /// Revoke an agent's API token; requests with it are refused from now on.
    Revoke(AgentsRevokeArgs),
}

/// Where the broker keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAddress {
    /// The SQLite file (the default).
    Sqlite(PathBuf),
    /// A Redis URL, shared by every replica.
    Redis(String),
}

impl StoreAddress {
    /// `--store` if given, else the SQLite file at `--db`.
    pub fn from_args(store: Option<&String>, db: &Path) -> Self {
        match store {
            Some(url) => StoreAddress::Redis(url.clone()),
            None => StoreAddress::Sqlite(db.to_owned()),
        }
    }
}

impl std::fmt::Display for StoreAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreAddress::Sqlite(path) => write!(f, "database {}", path.display()),
            // Never the password a URL may carry.
            StoreAddress::Redis(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    write!(f, "Redis at {u}")
                }
                Err(_) => f.write_str("Redis"),
            },
        }
    }
}

/// `--store`: a Redis URL with one of the schemes the broker speaks.
pub fn parse_store_url(s: &str) -> Result<String, String> {
    const SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];
    let url = url::Url::parse(s).map_err(|e| {
        format!("not a URL ({e}); expected redis://host:port, rediss://… or redis+unix:///path")
    })?;
    if !SCHEMES.contains(&url.scheme()) {
        return Err(format!(
            "the scheme {:?} is not one the broker speaks: use redis://, rediss:// (TLS) or redis+unix:// (a socket)",
            url.scheme()
        ));
    }
    if matches!(url.scheme(), "redis" | "rediss") && url.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host (redis://host:6379)".into());
    }
    Ok(s.to_owned())
}

/// Options of `agent-assist-broker agents add`.
#[derive(Debug, Clone, Args)]
pub struct AgentsAddArgs {
    /// The site configuration file; the agent's site must be in it.
    #[arg(long, env = "AGENT_ASSIST_CONFIG", default_value = "sites.toml")]
    pub config: PathBuf,
    /// The broker's SQLite database file; created if it does not exist.
    #[arg(long, env = "AGENT_ASSIST_DB", default_value = "broker.sqlite3")]
    pub db: PathBuf,
    /// Redis instead of the SQLite file: `redis://host:6379/0`, `rediss://…`
    /// (TLS), `redis+unix:///path/to/redis.sock`. Every replica of a broker
    /// gives the same. See the README's "Several replicas on Redis".
    #[arg(long, env = "AGENT_ASSIST_STORE", value_parser = parse_store_url)]
    pub store: Option<String>,
    /// The key of the site the agent works for.
    #[arg(long)]
    pub site: String,
    /// The agent's display name, shown to visitors ("Dana").
    #[arg(long)]
    pub name: String,
}

/// Options of `agent-assist-broker agents list`.
#[derive(Debug, Clone, Args)]
pub struct AgentsListArgs {
    /// The broker's SQLite database file.
    #[arg(long, env = "AGENT_ASSIST_DB", default_value = "broker.sqlite3")]
    pub db: PathBuf,
    /// Redis instead of the SQLite file: `redis://host:6379/0`, `rediss://…`
    /// (TLS), `redis+unix:///path/to/redis.sock`. Every replica of a broker
    /// gives the same. See the README's "Several replicas on Redis".
    #[arg(long, env = "AGENT_ASSIST_STORE", value_parser = parse_store_url)]
    pub store: Option<String>,
    /// Only the agents of this site.
    #[arg(long)]
    pub site: Option<String>,
}

/// Options of `agent-assist-broker agents revoke`.
#[derive(Debug, Clone, Args)]
pub struct AgentsRevokeArgs {
    /// The broker's SQLite database file.
    #[arg(long, env = "AGENT_ASSIST_DB", default_value = "broker.sqlite3")]
    pub db: PathBuf,
    /// Redis instead of the SQLite file: `redis://host:6379/0`, `rediss://…`
    /// (TLS), `redis+unix:///path/to/redis.sock`. Every replica of a broker
    /// gives the same. See the README's "Several replicas on Redis".
    #[arg(long, env = "AGENT_ASSIST_STORE", value_parser = parse_store_url)]
    pub store: Option<String>,
    /// The agent's id (`agt_…`), as `agents add` and `agents list` print it.
    pub id: String,
}

/// Options of `agent-assist-broker serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The site configuration file (TOML, one `[[site]]` per website).
    #[arg(long, env = "AGENT_ASSIST_CONFIG", default_value = "sites.toml")]
    pub config: PathBuf,
    /// The SQLite database file; created on first start.
    #[arg(long, env = "AGENT_ASSIST_DB", default_value = "broker.sqlite3")]
    pub db: PathBuf,
    /// Redis instead of the SQLite file: `redis://host:6379/0`, `rediss://…`
    /// (TLS), `redis+unix:///path/to/redis.sock`. Every replica of a broker
    /// gives the same. See the README's "Several replicas on Redis".
    #[arg(long, env = "AGENT_ASSIST_STORE", value_parser = parse_store_url)]
    pub store: Option<String>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "AGENT_ASSIST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder of static pages served at `/` (demo shop, support page, agent console).
    #[arg(long, env = "AGENT_ASSIST_WWW")]
    pub www: Option<PathBuf>,
    /// Folder of the script-tag bundle (`.js` and `.wasm`) served at `/sdk/`.
    #[arg(long, env = "AGENT_ASSIST_SDK")]
    pub sdk: Option<PathBuf>,
    /// Folder of integration examples served at `/examples/` (demo only).
    #[arg(long, env = "AGENT_ASSIST_EXAMPLES")]
    pub examples: Option<PathBuf>,
    /// DEMO ONLY, NEVER IN PRODUCTION: enables `POST /demo/login`, which
    /// signs an identity for a few made-up users with the site's secret,
    /// for anyone who asks. It stands in for a real site's own server in
    /// the demo shop's fake login. Off unless given.
    #[arg(long)]
    pub demo_login: bool,
    /// Append every frame received on mirror sockets to FILE, for privacy
    /// audits and tests; the file holds page content and credentials, keep
    /// it safe.
    #[arg(long, value_name = "FILE")]
    pub mirror_capture: Option<PathBuf>,
    /// The request header a trusted proxy in front of the broker puts the
    /// client's address in (e.g. `X-Forwarded-For`; its last entry is
    /// used). Without it the creation limits count the connection's peer,
    /// which behind a proxy is the proxy. Never set it without a proxy
    /// that overwrites the header: clients could write any address there.
    #[arg(long, value_name = "NAME", env = "AGENT_ASSIST_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Seconds a connection may take to send a request's headers (and stay
    /// idle between requests) before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub header_timeout_secs: u32,
    /// Seconds a request may take, body included, before it is answered 408.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub request_timeout_secs: u32,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for requests in flight;
    /// new requests are answered 503 meanwhile.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub drain_secs: u32,
}

impl ServeArgs {
    /// The server's time limits from the command line.
    pub fn http_limits(&self) -> crate::server::HttpLimits {
        use std::time::Duration;
        crate::server::HttpLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs.into()),
            request_timeout: Duration::from_secs(self.request_timeout_secs.into()),
            drain: Duration::from_secs(self.drain_secs.into()),
        }
    }
}

/// A configuration that was read and checked; see [`Config::load`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Sites by their public key.
    sites: HashMap<String, Site>,
    /// Every origin any site allows. A CORS preflight does not say which site
    /// it is for, so it is answered against this union; the actual request is
    /// then checked against its own site.
    all_origins: HashSet<String>,
}

/// One website that embeds the widget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Public key the widget sends as `site_key`.
    pub key: String,
    /// Display name, shown to agents.
    pub name: String,
    /// Origins (`scheme://host[:port]`) whose pages may call the API for this site.
    pub allowed_origins: Vec<String>,
    /// How long an issued code stays redeemable, in seconds.
    pub code_lifetime_secs: u32,
    /// Verifies agent JWTs and visitors' identity tokens. Without one, the
    /// site's agents can only use broker-issued API tokens and its visitors
    /// cannot be verified (so `auth_mode = "code"` requires one).
    pub secret: Option<SiteSecret>,
    /// How long an `authorizing` session waits for the visitor's answer.
    pub consent_timeout_secs: u32,
    /// How many failed redemptions lock an agent or the whole site.
    pub redeem_limits: RedeemLimits,
    /// How many codes one visitor, one network address and the whole site
    /// may hold and ask for.
    pub create_limits: CreateLimits,
    /// How the site identifies its visitors (seed 003), enforced on every
    /// code request.
    pub auth_mode: AuthMode,
    /// Where the site's agents are: anonymous visitors are named after
    /// their first contact (`Web User - MM/DD HH:MM`) in this zone.
    pub time_zone: SiteTimeZone,
    /// Which of the site's pages the live mirror may show the agent, as
    /// path patterns (`/*` every page, `/help/*` a section, `!/account/*`
    /// an exclusion; see [`agent_assist_protocol::mirror::page_shared`]).
    /// The visitor's browser sends nothing of any other page, and the
    /// broker forwards such a page as hidden if it does.
    pub share_pages: Vec<String>,
}

/// A site's IANA time zone, resolved once at start-up from the time zone
/// database bundled into the broker (so a machine without
/// `/usr/share/zoneinfo` names visitors the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteTimeZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl SiteTimeZone {
    /// The zone named `name` (`Europe/Paris`, `UTC`, …); the error says why not.
    pub fn named(name: &str) -> Result<Self, String> {
        if name.trim().is_empty() {
            return Err("must not be empty; use an IANA name such as \"Europe/Paris\"".into());
        }
        let zone = jiff::tz::TimeZone::get(name).map_err(|_| {
            format!("{name:?} is not a time zone name; use an IANA name such as \"Europe/Paris\"")
        })?;
        Ok(Self {
            name: name.to_owned(),
            zone,
        })
    }

    /// Coordinated Universal Time, the default.
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            zone: jiff::tz::TimeZone::UTC,
        }
    }

    /// The name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone itself.
    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }
}

impl Default for SiteTimeZone {
    fn default() -> Self {
        Self::utc()
    }
}

/// The spelling of `mode` in the site file.
pub fn auth_mode_name(mode: AuthMode) -> &'static str {
    match mode {
        AuthMode::Visitor => "visitor",
        AuthMode::Code => "code",
        AuthMode::Form => "form",
        AuthMode::OptionalForm => "optional-form",
    }
}

const AUTH_MODES: [AuthMode; 4] = [
    AuthMode::Visitor,
    AuthMode::Code,
    AuthMode::Form,
    AuthMode::OptionalForm,
];

/// A site's shared secret. It prints as `SiteSecret(..)` so that no `{:?}`
/// of a [`Site`] or [`Config`] can put it in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteSecret(Vec<u8>);

impl SiteSecret {
    /// A secret from its text; the caller checks the length.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into().into_bytes())
    }

    /// The key bytes for HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SiteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteSecret(..)")
    }
}

/// How many failed redemptions (wrong, expired, used or another site's code)
/// are allowed before redeeming is refused for a while. The defaults make
/// guessing hopeless: one agent credential gets at most 20 guesses a day,
/// a whole site at most 480, against a million codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeemLimits {
    /// Failures one agent may have within `agent_window_secs`…
    pub agent_max: u32,
    pub agent_window_secs: u32,
    /// …and within any 24 hours.
    pub agent_daily_max: u32,
    /// Failures all of a site's agents together may have within `site_window_secs`.
    pub site_max: u32,
    pub site_window_secs: u32,
}

impl Default for RedeemLimits {
    fn default() -> Self {
        Self {
            agent_max: 5,
            agent_window_secs: 600,
            agent_daily_max: 20,
            site_max: 20,
            site_window_secs: 3600,
        }
    }
}

/// Limits on code requests (`[site.create_limits]`), so that one client
/// cannot fill the site's code space or hand a guesser many targets. A
/// client is both the visitor (the widget's visitor id, or the signed-in
/// user) and the network address it calls from (IPv6 by its /64, as one
/// machine often has a whole /64). Live codes are the ones waiting for an
/// agent; a cancelled or redeemed code stops counting at once. 0 turns a
/// limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateLimits {
    /// Live codes one visitor may hold at once.
    pub visitor_live: u32,
    /// Codes one visitor may ask for within a minute.
    pub visitor_per_minute: u32,
    /// Live codes one address may hold at once (an office or a phone
    /// network puts many visitors behind one).
    pub address_live: u32,
    /// Codes one address may ask for within a minute.
    pub address_per_minute: u32,
    /// Live codes the whole site may have: a tenth of the code space by
    /// default, so a flood from many addresses still leaves nine codes in
    /// ten free and a guess as hopeless as ever.
    pub site_live: u32,
}

impl CreateLimits {
    /// No limit at all (benchmarks, load tests).
    pub const OFF: Self = Self {
        visitor_live: 0,
        visitor_per_minute: 0,
        address_live: 0,
        address_per_minute: 0,
        site_live: 0,
    };
}

impl Default for CreateLimits {
    fn default() -> Self {
        Self {
            visitor_live: 3,
            visitor_per_minute: 5,
            address_live: 20,
            address_per_minute: 30,
            site_live: 100_000,
        }
    }
}

/// The largest value a creation limit may have.
pub const MAX_CREATE_LIMIT: u32 = 1_000_000;

impl Site {
    /// A site with the given key, name and origins and every optional
    /// setting at its default (for tests and embedders).
    pub fn new(
        key: impl Into<String>,
        name: impl Into<String>,
        allowed_origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            key: key.into(),
            name: name.into(),
            allowed_origins: allowed_origins.into_iter().map(Into::into).collect(),
            code_lifetime_secs: DEFAULT_CODE_LIFETIME_SECS,
            secret: None,
            consent_timeout_secs: DEFAULT_CONSENT_TIMEOUT_SECS,
            redeem_limits: RedeemLimits::default(),
            create_limits: CreateLimits::default(),
            auth_mode: AuthMode::Visitor,
            time_zone: SiteTimeZone::utc(),
            share_pages: default_share_pages(),
        }
    }

    /// True when a browser page served from `origin` may act for this site.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

/// Why a configuration could not be used. The message names the file (when
/// there is one) and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The file as written, before it is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    site: Vec<RawSite>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    key: String,
    name: String,
    allowed_origins: Vec<String>,
    code_lifetime_secs: Option<i64>,
    secret: Option<String>,
    secret_env: Option<String>,
    consent_timeout_secs: Option<i64>,
    redeem_limits: Option<RawRedeemLimits>,
    create_limits: Option<RawCreateLimits>,
    auth_mode: Option<String>,
    time_zone: Option<String>,
    share_pages: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedeemLimits {
    agent_max: Option<i64>,
    agent_window_secs: Option<i64>,
    agent_daily_max: Option<i64>,
    site_max: Option<i64>,
    site_window_secs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreateLimits {
    visitor_live: Option<i64>,
    visitor_per_minute: Option<i64>,
    address_live: Option<i64>,
    address_per_minute: Option<i64>,
    site_live: Option<i64>,
}

impl Config {
    /// Reads and checks the site file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks a configuration from TOML text. The error names the
    /// offending field, e.g. `site[1].allowed_origins[0]: ...`. A
    /// `secret_env` is read from this process's environment.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        Self::from_toml_with_env(text, |name| std::env::var(name).ok())
    }

    /// [`Config::from_toml`] with `env` answering for the environment, so
    /// tests need not change the process's real one.
    pub fn from_toml_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::from_sites(raw.site.into_iter().map(|s| s.check(&env)).enumerate())
    }

    /// Builds a configuration from sites made in code (tests, embedders),
    /// with the same checks as a file gets.
    pub fn new(sites: impl IntoIterator<Item = Site>) -> Result<Self, String> {
        Self::from_sites(sites.into_iter().map(Ok).enumerate())
    }

    fn from_sites(
        sites: impl Iterator<Item = (usize, Result<Site, (String, String)>)>,
    ) -> Result<Self, String> {
        let mut by_key: HashMap<String, (usize, Site)> = HashMap::new();
        for (i, site) in sites {
            let site = site
                .and_then(Site::check)
                .map_err(|(field, msg)| format!("site[{i}].{field}: {msg}"))?;
            if let Some((first, _)) = by_key.get(&site.key) {
                return Err(format!(
                    "site[{i}].key: {:?} is already the key of site[{first}]; keys must be unique",
                    site.key
                ));
            }
            by_key.insert(site.key.clone(), (i, site));
        }
        if by_key.is_empty() {
            return Err("site: no [[site]] table; the broker needs at least one site".into());
        }
        let sites: HashMap<String, Site> = by_key.into_iter().map(|(k, (_, s))| (k, s)).collect();
        let all_origins = sites
            .values()
            .flat_map(|s| s.allowed_origins.iter().cloned())
            .collect();
        Ok(Self { sites, all_origins })
    }

    /// The site with this public key, if any.
    pub fn site(&self, key: &str) -> Option<&Site> {
        self.sites.get(key)
    }

    /// Every configured site, in no particular order.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.values()
    }

    /// True when at least one site allows `origin`.
    pub fn any_site_allows(&self, origin: &str) -> bool {
        self.all_origins.contains(origin)
    }
}

/// `value` if it is in `range`, `default` if it is absent; else an error
/// naming `field`.
fn in_range(
    field: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Result<u32, (String, String)> {
    match value {
        None => Ok(default),
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| {
                (
                    field.to_owned(),
                    format!(
                        "{v} is out of range; it must be {}..={}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

impl RawSite {
    fn check(self, env: &impl Fn(&str) -> Option<String>) -> Result<Site, (String, String)> {
        let code_lifetime_secs = in_range(
            "code_lifetime_secs",
            self.code_lifetime_secs,
            1..=MAX_CODE_LIFETIME_SECS,
            DEFAULT_CODE_LIFETIME_SECS,
        )?;
        let consent_timeout_secs = in_range(
            "consent_timeout_secs",
            self.consent_timeout_secs,
            CONSENT_TIMEOUT_RANGE,
            DEFAULT_CONSENT_TIMEOUT_SECS,
        )?;
        let secret = match (self.secret, self.secret_env) {
            (Some(_), Some(_)) => {
                return Err((
                    "secret_env".into(),
                    "set either secret or secret_env, not both".into(),
                ))
            }
            (Some(secret), None) => Some(SiteSecret::new(secret)),
            (None, Some(var)) => {
                let secret = env(&var).ok_or_else(|| {
                    (
                        "secret_env".to_owned(),
                        format!("the environment variable {var:?} is not set"),
                    )
                })?;
                if secret.chars().count() < MIN_SECRET_LEN {
                    return Err((
                        "secret_env".into(),
                        format!(
                            "the environment variable {var:?} holds fewer than \
                             {MIN_SECRET_LEN} characters"
                        ),
                    ));
                }
                Some(SiteSecret::new(secret))
            }
            (None, None) => None,
        };
        let auth_mode = match self.auth_mode.as_deref() {
            None => AuthMode::Visitor,
            Some(name) => AUTH_MODES
                .into_iter()
                .find(|m| auth_mode_name(*m) == name)
                .ok_or_else(|| {
                    (
                        "auth_mode".to_owned(),
                        format!(
                            "{name:?} is not a mode; use one of \"visitor\", \"code\", \"form\", \
                             \"optional-form\""
                        ),
                    )
                })?,
        };
        let time_zone = match self.time_zone.as_deref() {
            None => SiteTimeZone::utc(),
            Some(name) => SiteTimeZone::named(name).map_err(|msg| ("time_zone".to_owned(), msg))?,
        };
        let raw = self.redeem_limits.unwrap_or_default();
        let d = RedeemLimits::default();
        let count = 1..=u32::MAX;
        let window = 1..=MAX_LIMIT_WINDOW_SECS;
        let redeem_limits = RedeemLimits {
            agent_max: in_range(
                "redeem_limits.agent_max",
                raw.agent_max,
                count.clone(),
                d.agent_max,
            )?,
            agent_window_secs: in_range(
                "redeem_limits.agent_window_secs",
                raw.agent_window_secs,
                window.clone(),
                d.agent_window_secs,
            )?,
            agent_daily_max: in_range(
                "redeem_limits.agent_daily_max",
                raw.agent_daily_max,
                count.clone(),
                d.agent_daily_max,
            )?,
            site_max: in_range("redeem_limits.site_max", raw.site_max, count, d.site_max)?,
            site_window_secs: in_range(
                "redeem_limits.site_window_secs",
                raw.site_window_secs,
                window,
                d.site_window_secs,
            )?,
        };
        let raw = self.create_limits.unwrap_or_default();
        let d = CreateLimits::default();
        let limit = |field: &str, value, default| {
            in_range(
                &format!("create_limits.{field}"),
                value,
                0..=MAX_CREATE_LIMIT,
                default,
            )
        };
        let create_limits = CreateLimits {
            visitor_live: limit("visitor_live", raw.visitor_live, d.visitor_live)?,
            visitor_per_minute: limit(
                "visitor_per_minute",
                raw.visitor_per_minute,
                d.visitor_per_minute,
            )?,
            address_live: limit("address_live", raw.address_live, d.address_live)?,
            address_per_minute: limit(
                "address_per_minute",
                raw.address_per_minute,
                d.address_per_minute,
            )?,
            site_live: limit("site_live", raw.site_live, d.site_live)?,
        };
        Ok(Site {
            key: self.key,
            name: self.name,
            allowed_origins: self.allowed_origins,
            code_lifetime_secs,
            secret,
            consent_timeout_secs,
            redeem_limits,
            create_limits,
            auth_mode,
            time_zone,
            share_pages: self.share_pages.unwrap_or_else(default_share_pages),
        })
    }
}

fn default_share_pages() -> Vec<String> {
    DEFAULT_SHARE_PAGES
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

impl Site {
    /// Checks every field; the error is `(field, message)`.
    fn check(mut self) -> Result<Site, (String, String)> {
        if self.key.is_empty() {
            return Err(("key".into(), "must not be empty".into()));
        }
        if self.key.len() > MAX_SITE_KEY_LEN
            || !self
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err((
                "key".into(),
                format!(
                    "{:?} is not a valid key; use at most {MAX_SITE_KEY_LEN} of A-Z a-z 0-9 - _ .",
                    self.key
                ),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(("name".into(), "must not be empty".into()));
        }
        if !(1..=MAX_CODE_LIFETIME_SECS).contains(&self.code_lifetime_secs) {
            return Err((
                "code_lifetime_secs".into(),
                format!(
                    "{} is out of range; it must be 1..={MAX_CODE_LIFETIME_SECS}",
                    self.code_lifetime_secs
                ),
            ));
        }
        if !CONSENT_TIMEOUT_RANGE.contains(&self.consent_timeout_secs) {
            return Err((
                "consent_timeout_secs".into(),
                format!(
                    "{} is out of range; it must be {}..={}",
                    self.consent_timeout_secs,
                    CONSENT_TIMEOUT_RANGE.start(),
                    CONSENT_TIMEOUT_RANGE.end()
                ),
            ));
        }
        if let Some(secret) = &self.secret {
            // The length is checked here, not only where the file is read,
            // so a site made in code gets the same rule. The message never
            // quotes the secret.
            if String::from_utf8_lossy(secret.as_bytes()).chars().count() < MIN_SECRET_LEN {
                return Err((
                    "secret".into(),
                    format!("is shorter than {MIN_SECRET_LEN} characters"),
                ));
            }
        }
        if self.auth_mode == AuthMode::Code && self.secret.is_none() {
            // Checked here rather than where the file is read so that a site
            // made in code gets the same rule.
            return Err((
                "auth_mode".into(),
                "\"code\" verifies the identities the site's server signs, so the site \
                 needs a secret (set secret or secret_env)"
                    .into(),
            ));
        }
        let l = &self.redeem_limits;
        for (field, value, max) in [
            ("agent_max", l.agent_max, u32::MAX),
            (
                "agent_window_secs",
                l.agent_window_secs,
                MAX_LIMIT_WINDOW_SECS,
            ),
            ("agent_daily_max", l.agent_daily_max, u32::MAX),
            ("site_max", l.site_max, u32::MAX),
            (
                "site_window_secs",
                l.site_window_secs,
                MAX_LIMIT_WINDOW_SECS,
            ),
        ] {
            if !(1..=max).contains(&value) {
                return Err((
                    format!("redeem_limits.{field}"),
                    format!("{value} is out of range; it must be 1..={max}"),
                ));
            }
        }
        let c = &self.create_limits;
        for (field, value) in [
            ("visitor_live", c.visitor_live),
            ("visitor_per_minute", c.visitor_per_minute),
            ("address_live", c.address_live),
            ("address_per_minute", c.address_per_minute),
            ("site_live", c.site_live),
        ] {
            if value > MAX_CREATE_LIMIT {
                return Err((
                    format!("create_limits.{field}"),
                    format!("{value} is out of range; it must be 0..={MAX_CREATE_LIMIT}"),
                ));
            }
        }
        for (j, origin) in self.allowed_origins.iter_mut().enumerate() {
            *origin = check_origin(origin)
                .map_err(|msg| (format!("allowed_origins[{j}]"), format!("{origin:?} {msg}")))?;
        }
        for (j, pattern) in self.share_pages.iter().enumerate() {
            check_page_pattern(pattern)
                .map_err(|msg| (format!("share_pages[{j}]"), format!("{pattern:?} {msg}")))?;
        }
        Ok(self)
    }
}

/// Checks that `origin` is what a browser sends in `Origin`
/// (`scheme://host[:port]`) and returns it in the browser's spelling
/// (lowercase), so that comparing it with the header is a plain string match.
fn check_origin(origin: &str) -> Result<String, String> {
    let lower = origin.to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or("is not an origin; expected scheme://host[:port]")?;
    if scheme != "http" && scheme != "https" {
        return Err("has a scheme other than http or https".into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err(
            "has a path, query or fragment (an origin has none, not even a trailing /)".into(),
        );
    }
    if rest.contains('@') {
        return Err("contains user information".into());
    }
    let (host, port) = if let Some(v6_end) = rest.find(']') {
        // An IPv6 literal keeps its brackets in an origin: `http://[::1]:8080`.
        let (host, after) = rest.split_at(v6_end + 1);
        if !host.starts_with('[') {
            return Err("has an unbalanced ]".into());
        }
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err("has junk after the host".into()),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !host_ok {
        return Err("has no valid host".into());
    }
    if let Some(port) = port {
        let n: u16 = port
            .parse()
            .ok()
            .filter(|n| *n != 0 && !port.starts_with('0'))
            .ok_or("has an invalid port")?;
        // Browsers leave the default port out of `Origin`, so an origin that
        // spells it out would never match.
        if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
            return Err(format!(
                "spells out the default port :{n}, which browsers leave out of Origin"
            ));
        }
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [[site]]
        key = "demo"
        name = "Demo Shop"
        allowed_origins = ["http://127.0.0.1:8080", "http://localhost:8080"]

        [[site]]
        key = "other"
        name = "Other"
        allowed_origins = ["https://example.com"]
        code_lifetime_secs = 60
    "#;

    fn err(text: &str) -> String {
        Config::from_toml(text).expect_err("config should be refused")
    }

    #[test]
    fn a_good_file_is_read_with_defaults() {
        let config = Config::from_toml(GOOD).unwrap();
        let demo = config.site("demo").unwrap();
        assert_eq!(demo.name, "Demo Shop");
        assert_eq!(demo.code_lifetime_secs, DEFAULT_CODE_LIFETIME_SECS);
        assert!(demo.allows_origin("http://localhost:8080"));
        assert!(!demo.allows_origin("https://example.com"));
        assert_eq!(config.site("other").unwrap().code_lifetime_secs, 60);
        assert!(config.any_site_allows("https://example.com"));
        assert!(!config.any_site_allows("https://evil.example"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err(r#"
            [[site]]
            key = "demo"
            name = "Demo"
            allowed_origins = []
            colour = "red"
        "#);
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn missing_fields_are_named() {
        let e = err("[[site]]\nkey = \"demo\"\nallowed_origins = []\n");
        assert!(e.contains("name"), "{e}");
    }

    #[test]
    fn a_wrongly_typed_field_is_pointed_at() {
        let e = err("[[site]]\nkey = 5\nname = \"x\"\nallowed_origins = []\n");
        assert!(e.contains("key"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = err(r#"
            [[site]]
            key = "demo"
            name = "A"
            allowed_origins = []
            [[site]]
            key = "demo"
            name = "B"
            allowed_origins = []
        "#);
        assert!(e.contains("site[1].key"), "{e}");
        assert!(e.contains("unique"), "{e}");
    }

    #[test]
    fn empty_keys_are_refused() {
        let e = err("[[site]]\nkey = \"\"\nname = \"x\"\nallowed_origins = []\n");
        assert!(e.starts_with("site[0].key: must not be empty"), "{e}");
    }

    #[test]
    fn creation_limits_default_read_and_refuse_out_of_range() {
        let site = |extra: &str| {
            format!("[[site]]\nkey = \"d\"\nname = \"x\"\nallowed_origins = []\n{extra}")
        };
        let config = Config::from_toml(&site("")).unwrap();
        assert_eq!(
            config.site("d").unwrap().create_limits,
            CreateLimits::default()
        );
        let config = Config::from_toml(&site(
            "[site.create_limits]\nvisitor_live = 1\naddress_per_minute = 0\n",
        ))
        .unwrap();
        let limits = config.site("d").unwrap().create_limits;
        assert_eq!(limits.visitor_live, 1);
        assert_eq!(limits.address_per_minute, 0, "0 is off");
        assert_eq!(limits.site_live, 100_000);
        for (bad, field) in [
            ("visitor_live = -1", "visitor_live"),
            ("site_live = 1000001", "site_live"),
            ("per_hour = 3", "per_hour"),
        ] {
            let e = err(&site(&format!("[site.create_limits]\n{bad}\n")));
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn lifetimes_out_of_range_are_refused() {
        for bad in ["0", "86401", "-5"] {
            let e = err(&format!(
                "[[site]]\nkey = \"d\"\nname = \"x\"\nallowed_origins = []\ncode_lifetime_secs = {bad}\n"
            ));
            assert!(e.starts_with("site[0].code_lifetime_secs"), "{e}");
        }
        let ok = "[[site]]\nkey = \"d\"\nname = \"x\"\nallowed_origins = []\ncode_lifetime_secs = 86400\n";
        assert!(Config::from_toml(ok).is_ok());
    }

    #[test]
    fn origins_with_a_path_or_no_scheme_are_refused() {
        for bad in [
            "http://localhost:8080/",
            "http://localhost:8080/shop",
            "localhost:8080",
            "ftp://example.com",
            "http://",
            "http://example.com:99999",
            "http://example.com:80",
            "https://user@example.com",
            "http://exa mple.com",
        ] {
            let e = err(&format!(
                "[[site]]\nkey = \"d\"\nname = \"x\"\nallowed_origins = [\"ok.invalid\", {bad:?}]\n"
            ));
            assert!(e.starts_with("site[0].allowed_origins[0]"), "{bad}: {e}");
            let e = err(&format!(
                "[[site]]\nkey = \"d\"\nname = \"x\"\nallowed_origins = [\"http://ok.example\", {bad:?}]\n"
            ));
            assert!(e.starts_with("site[0].allowed_origins[1]"), "{bad}: {e}");
        }
    }

    #[test]
    fn origins_are_compared_in_the_browsers_spelling() {
        let config = Config::from_toml(
            "[[site]]\nkey = \"d\"\nname = \"x\"\nallowed_origins = [\"HTTP://Example.COM:8443\", \"http://[::1]:8080\"]\n",
        )
        .unwrap();
        let site = config.site("d").unwrap();
        assert!(site.allows_origin("http://example.com:8443"));
        assert!(site.allows_origin("http://[::1]:8080"));
    }

    const BASE: &str = "[[site]]\nkey = \"d\"\nname = \"x\"\nallowed_origins = []\n";
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn agent_settings_default_when_absent() {
        let config = Config::from_toml_with_env(BASE, no_env).unwrap();
        let site = config.site("d").unwrap();
        assert_eq!(site.secret, None);
        assert_eq!(site.consent_timeout_secs, 120);
        assert_eq!(
            site.redeem_limits,
            RedeemLimits {
                agent_max: 5,
                agent_window_secs: 600,
                agent_daily_max: 20,
                site_max: 20,
                site_window_secs: 3600,
            }
        );
    }

    #[test]
    fn agent_settings_are_read() {
        let text = format!(
            "{BASE}secret = \"{SECRET}\"\nconsent_timeout_secs = 10\n\
             [site.redeem_limits]\nagent_max = 3\nsite_window_secs = 60\n"
        );
        let config = Config::from_toml_with_env(&text, no_env).unwrap();
        let site = config.site("d").unwrap();
        assert_eq!(site.secret.as_ref().unwrap().as_bytes(), SECRET.as_bytes());
        assert_eq!(site.consent_timeout_secs, 10);
        assert_eq!(site.redeem_limits.agent_max, 3);
        assert_eq!(site.redeem_limits.site_window_secs, 60);
        assert_eq!(site.redeem_limits.agent_daily_max, 20);
        // The secret never shows in a debug print of the configuration.
        assert!(!format!("{config:?}").contains(SECRET));
    }

    #[test]
    fn a_secret_can_come_from_the_environment() {
        let text = format!("{BASE}secret_env = \"SITE_D_SECRET\"\n");
        let env = |name: &str| (name == "SITE_D_SECRET").then(|| SECRET.to_owned());
        let config = Config::from_toml_with_env(&text, env).unwrap();
        assert_eq!(
            config.site("d").unwrap().secret,
            Some(SiteSecret::new(SECRET))
        );
        let e = Config::from_toml_with_env(&text, no_env).unwrap_err();
        assert!(e.starts_with("site[0].secret_env"), "{e}");
        assert!(e.contains("SITE_D_SECRET"), "{e}");
        let short = |_: &str| Some("short".to_owned());
        let e = Config::from_toml_with_env(&text, short).unwrap_err();
        assert!(e.starts_with("site[0].secret_env"), "{e}");
        assert!(!e.contains("short\""), "the value is not quoted: {e}");
    }

    #[test]
    fn bad_agent_settings_are_named() {
        for (extra, field) in [
            ("secret = \"too short\"\n".to_owned(), "site[0].secret:"),
            (
                format!("secret = \"{SECRET}\"\nsecret_env = \"X\"\n"),
                "site[0].secret_env",
            ),
            (
                "consent_timeout_secs = 9\n".to_owned(),
                "site[0].consent_timeout_secs",
            ),
            (
                "consent_timeout_secs = 3601\n".to_owned(),
                "site[0].consent_timeout_secs",
            ),
            (
                "[site.redeem_limits]\nagent_max = 0\n".to_owned(),
                "site[0].redeem_limits.agent_max",
            ),
            (
                "[site.redeem_limits]\nsite_window_secs = 86401\n".to_owned(),
                "site[0].redeem_limits.site_window_secs",
            ),
            ("[site.redeem_limits]\nburst = 1\n".to_owned(), "burst"),
        ] {
            let e = Config::from_toml_with_env(&format!("{BASE}{extra}"), no_env).unwrap_err();
            assert!(e.contains(field), "{extra}: {e}");
            assert!(!e.contains("too short"), "the secret is not quoted: {e}");
        }
    }

    #[test]
    fn identity_settings_default_to_anonymous_visitors_in_utc() {
        let config = Config::from_toml_with_env(BASE, no_env).unwrap();
        let site = config.site("d").unwrap();
        assert_eq!(site.auth_mode, AuthMode::Visitor);
        assert_eq!(site.time_zone.name(), "UTC");
    }

    #[test]
    fn identity_settings_are_read() {
        for (mode, want) in [
            ("visitor", AuthMode::Visitor),
            ("form", AuthMode::Form),
            ("optional-form", AuthMode::OptionalForm),
            ("code", AuthMode::Code),
        ] {
            let text = format!(
                "{BASE}secret = \"{SECRET}\"\nauth_mode = \"{mode}\"\ntime_zone = \"Europe/Paris\"\n"
            );
            let config = Config::from_toml_with_env(&text, no_env).unwrap();
            let site = config.site("d").unwrap();
            assert_eq!(site.auth_mode, want);
            assert_eq!(site.time_zone.name(), "Europe/Paris");
            assert_eq!(auth_mode_name(want), mode);
        }
    }

    #[test]
    fn bad_identity_settings_are_named() {
        for (extra, field, says) in [
            (
                "auth_mode = \"magic\"\n",
                "site[0].auth_mode",
                "optional-form",
            ),
            ("auth_mode = \"Code\"\n", "site[0].auth_mode", "not a mode"),
            ("auth_mode = \"code\"\n", "site[0].auth_mode", "secret"),
            ("auth_mode = 3\n", "auth_mode", ""),
            (
                "time_zone = \"Mars/Olympus_Mons\"\n",
                "site[0].time_zone",
                "IANA",
            ),
            ("time_zone = \"\"\n", "site[0].time_zone", "empty"),
            ("time_zone = \"+02:00\"\n", "site[0].time_zone", "IANA"),
        ] {
            let e = Config::from_toml_with_env(&format!("{BASE}{extra}"), no_env).unwrap_err();
            assert!(e.contains(field), "{extra}: {e}");
            assert!(e.contains(says), "{extra}: {e}");
        }
        // A site made in code gets the same rule as a file.
        let mut site = Site::new("d", "x", ["https://x.example"]);
        site.auth_mode = AuthMode::Code;
        let e = Config::new([site.clone()]).unwrap_err();
        assert!(e.starts_with("site[0].auth_mode"), "{e}");
        site.secret = Some(SiteSecret::new(SECRET));
        assert!(Config::new([site]).is_ok());
    }

    #[test]
    fn shared_pages_default_to_every_page_and_are_checked() {
        let config = Config::from_toml_with_env(BASE, no_env).unwrap();
        assert_eq!(config.site("d").unwrap().share_pages, vec!["/*"]);
        let text = format!("{BASE}share_pages = [\"/help/*\", \"!/help/account\"]\n");
        let config = Config::from_toml_with_env(&text, no_env).unwrap();
        assert_eq!(
            config.site("d").unwrap().share_pages,
            vec!["/help/*", "!/help/account"]
        );
        // Nothing shared is a valid choice: every page shows as hidden.
        let text = format!("{BASE}share_pages = []\n");
        let config = Config::from_toml_with_env(&text, no_env).unwrap();
        assert!(config.site("d").unwrap().share_pages.is_empty());
        for (bad, says) in [
            (
                "[\"/*\", \"help/*\"]",
                "site[0].share_pages[1]: \"help/*\" must start with",
            ),
            (
                "[\"/a?b\"]",
                "site[0].share_pages[0]: \"/a?b\" must be a path",
            ),
            ("\"/*\"", "share_pages"),
        ] {
            let e = Config::from_toml_with_env(&format!("{BASE}share_pages = {bad}\n"), no_env)
                .unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // A site made in code gets the same check.
        let mut site = Site::new("d", "x", ["https://x.example"]);
        site.share_pages = vec!["*".into()];
        let e = Config::new([site]).unwrap_err();
        assert!(e.starts_with("site[0].share_pages[0]"), "{e}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../sites.example.toml");
        let config = Config::from_toml_with_env(text, no_env).unwrap();
        let shop = config.site("shop").unwrap();
        assert_eq!(shop.auth_mode, AuthMode::Visitor);
        assert_eq!(shop.time_zone.name(), "UTC");
        assert_eq!(
            shop.share_pages,
            vec!["/*", "!/account", "!/account/*", "!/checkout/*"]
        );
    }

    #[test]
    fn a_file_without_sites_is_refused() {
        assert!(err("").starts_with("site:"));
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sites.toml");
        std::fs::write(
            &path,
            "[[site]]\nkey = \"\"\nname = \"x\"\nallowed_origins = []\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("sites.toml"), "{e}");
        assert!(e.contains("site[0].key"), "{e}");
        let e = Config::load(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
