//! `agent-assist-broker agents add|list|revoke`: the operator's tools for
//! agents with broker-issued API tokens.
//!
//! They work on the database file directly, so they can run while a broker
//! serves it (SQLite serialises the writes), and a revocation takes effect
//! on the very next request: the broker looks agents up on every request.
//!
//! The token is printed once by `add` and never stored, only its SHA-256;
//! `list` shows everything else. Output is for people and for scripts:
//! `add` ends with `agent_id=…` and `token=…` lines that a script can pick
//! out with `grep`/`sed`.

use std::fmt::Write as _;

use crate::clock::{Clock, SystemClock, UtcMinute};
use crate::config::ConfigError;
use crate::config::{
    AgentsAddArgs, AgentsCommand, AgentsListArgs, AgentsRevokeArgs, Config, StoreAddress,
};
use crate::jwt::MAX_NAME_LEN;
use crate::secrets::{hash_token, new_agent_id, new_api_token};
use crate::store::{self, NewAgent, RevokeOutcome, StoreError};

/// Why an `agents` command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("no site has the key {0:?} in the config file")]
    UnknownSite(String),
    #[error("--name: {0}")]
    InvalidName(String),
    #[error("no agent has the id {0:?}")]
    UnknownAgent(String),
    #[error("cannot use the store (the database or Redis): {0}")]
    Store(#[from] StoreError),
}

impl AdminError {
    /// The process exit code: 2 for what the operator has to fix in the
    /// command or the config (like a usage error), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Config(_) | AdminError::UnknownSite(_) | AdminError::InvalidName(_) => 2,
            AdminError::UnknownAgent(_) | AdminError::Store(_) => 1,
        }
    }
}

/// Runs an `agents` subcommand and returns what to print on stdout.
pub async fn agents(command: AgentsCommand) -> Result<String, AdminError> {
    match command {
        AgentsCommand::Add(args) => add(args).await,
        AgentsCommand::List(args) => list(args).await,
        AgentsCommand::Revoke(args) => revoke(args).await,
    }
}

async fn add(args: AgentsAddArgs) -> Result<String, AdminError> {
    // The config is read first, so a wrong site creates no database.
    let config = Config::load(&args.config)?;
    let site = config
        .site(&args.site)
        .ok_or_else(|| AdminError::UnknownSite(args.site.clone()))?;
    let name = args.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(AdminError::InvalidName(format!(
            "must be 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    let store = store::open(&StoreAddress::from_args(args.store.as_ref(), &args.db)).await?;
    let id = new_agent_id();
    let token = new_api_token();
    store
        .add_agent(NewAgent {
            id: id.clone(),
            site_key: site.key.clone(),
            name: name.to_owned(),
            token_hash: hash_token(&token),
            created_at: SystemClock.now_ms(),
        })
        .await?;
    Ok(format!(
        "Added agent {name:?} to site {:?}. The token is shown only this once; \
         the broker keeps only its hash.\nagent_id={id}\ntoken={token}\n",
        site.key
    ))
}

async fn list(args: AgentsListArgs) -> Result<String, AdminError> {
    let store = store::open(&StoreAddress::from_args(args.store.as_ref(), &args.db)).await?;
    let agents = store.agents(args.site.as_deref()).await?;
    if agents.is_empty() {
        return Ok("No agents.\n".to_owned());
    }
    let rows: Vec<[String; 5]> = agents
        .into_iter()
        .map(|a| {
            let status = match a.revoked_at {
                Some(at) => format!("revoked {}", utc(at)),
                None => "active".to_owned(),
            };
            [a.id, a.site_key, a.name, utc(a.created_at), status]
        })
        .collect();
    let header = ["ID", "SITE", "NAME", "CREATED", "STATUS"].map(str::to_owned);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (w, cell)) in widths.iter().zip(row).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

async fn revoke(args: AgentsRevokeArgs) -> Result<String, AdminError> {
    let store = store::open(&StoreAddress::from_args(args.store.as_ref(), &args.db)).await?;
    match store.revoke_agent(&args.id, SystemClock.now_ms()).await? {
        RevokeOutcome::Revoked => Ok(format!(
            "Revoked agent {}; its token is refused from now on.\n",
            args.id
        )),
        RevokeOutcome::AlreadyRevoked => Ok(format!("Agent {} was already revoked.\n", args.id)),
        RevokeOutcome::NotFound => Err(AdminError::UnknownAgent(args.id)),
    }
}

fn utc(ms: u64) -> String {
    let t = UtcMinute::from_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}
