//! The command line and the site configuration file.
//!
//! The site file is TOML with one `[[site]]` table per website that embeds the
//! widget. It is checked completely at start-up: a broker that starts is a
//! broker whose every site is usable, and a mistake is reported with the file
//! and the field it is in rather than discovered by a visitor.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// Code lifetime used when a site does not set `code_lifetime_secs`: 20 minutes.
pub const DEFAULT_CODE_LIFETIME_SECS: u32 = 1200;

/// Longest code lifetime a site may configure: one day. A code that lives
/// longer only widens the window in which it can be guessed.
pub const MAX_CODE_LIFETIME_SECS: u32 = 86_400;

/// Longest site key accepted, in bytes.
const MAX_SITE_KEY_LEN: usize = 64;

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
}

impl Site {
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
    /// offending field, e.g. `site[1].allowed_origins[0]: ...`.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::from_sites(raw.site.into_iter().map(RawSite::check).enumerate())
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

impl RawSite {
    fn check(self) -> Result<Site, (String, String)> {
        let code_lifetime_secs = match self.code_lifetime_secs {
            None => DEFAULT_CODE_LIFETIME_SECS,
            Some(secs) => u32::try_from(secs)
                .ok()
                .filter(|s| (1..=MAX_CODE_LIFETIME_SECS).contains(s))
                .ok_or_else(|| {
                    (
                        "code_lifetime_secs".to_owned(),
                        format!("{secs} is out of range; it must be 1..={MAX_CODE_LIFETIME_SECS}"),
                    )
                })?,
        };
        Ok(Site {
            key: self.key,
            name: self.name,
            allowed_origins: self.allowed_origins,
            code_lifetime_secs,
        })
    }
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
        for (j, origin) in self.allowed_origins.iter_mut().enumerate() {
            *origin = check_origin(origin)
                .map_err(|msg| (format!("allowed_origins[{j}]"), format!("{origin:?} {msg}")))?;
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
