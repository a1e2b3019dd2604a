//! How a site's server, written in Rust, signs its logged-in user for the
//! widget's `identify()`: an HS256 JWT with the site's secret.
//!
//! `AGENT_ASSIST_SECRET=… cargo run -p agent-assist-broker --example mint_identity -- u-1001 "Alex Martin" alex@example.com`
//! prints the JSON object the page passes to `identify()`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// The object for `identify()`, valid for `lifetime_secs` from `now_secs`.
pub fn mint_identity(
    user_id: &str,
    name: &str,
    email: &str,
    secret: &str,
    now_secs: u64,
    lifetime_secs: u64,
) -> serde_json::Value {
    let b64 = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    // No `site` claim: it marks agent tokens, and the broker refuses an
    // identity that carries one.
    let claims =
        json!({ "sub": user_id, "name": name, "email": email, "exp": now_secs + lifetime_secs });
    let unsigned = format!(
        "{}.{}",
        b64(&json!({ "alg": "HS256", "typ": "JWT" })),
        b64(&claims)
    );
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(unsigned.as_bytes());
    let token = format!(
        "{unsigned}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    json!({ "userId": user_id, "name": name, "email": email, "token": token })
}

#[allow(dead_code)] // The test that includes this file calls only `mint_identity`.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Ok(secret) = std::env::var("AGENT_ASSIST_SECRET") else {
        eprintln!("set AGENT_ASSIST_SECRET to the site's secret");
        std::process::exit(2);
    };
    let [user_id, name, email] = args.as_slice() else {
        eprintln!("usage: mint_identity USER_ID NAME EMAIL");
        std::process::exit(2);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!(
        "{}",
        mint_identity(user_id, name, email, &secret, now, 3600)
    );
}
