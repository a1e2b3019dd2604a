//! Support codes, session ids, device tokens, agent ids and API tokens,
//! stream tickets, and how they are hashed.
//!
//! Everything random here comes from the operating system's CSPRNG
//! (`getrandom`). Codes and tokens are never stored in clear: a code is kept
//! as an HMAC under a per-broker secret (a 6-digit space is small enough that
//! a plain hash could be reversed by trying all million codes); device
//! tokens, agent API tokens and stream tickets as a SHA-256 (they have 128
//! or 256 random bits, so a plain hash cannot be reversed by trying).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Number of distinct codes: `000000`–`999999`.
pub const CODE_SPACE: u32 = 1_000_000;

/// The largest multiple of [`CODE_SPACE`] that fits in a `u32`. Draws at or
/// above it are thrown away, so that `draw % CODE_SPACE` is exactly uniform
/// (taking the remainder of every draw would favour the low codes slightly).
const UNBIASED_LIMIT: u32 = (u32::MAX / CODE_SPACE) * CODE_SPACE;

/// Length of the secret keying the code HMAC, in bytes.
pub const CODE_SECRET_LEN: usize = 32;

/// A SHA-256 or HMAC-SHA256 digest.
pub type Digest32 = [u8; 32];

/// Fills `buf` from the OS CSPRNG.
///
/// # Panics
/// When the operating system cannot provide randomness. A broker that cannot
/// draw random numbers must not hand out codes or tokens at all.
pub fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        panic!("the OS random number generator failed: {e}");
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    fill_random(&mut b);
    u32::from_le_bytes(b)
}

/// Maps a stream of uniform `u32` draws to a number uniform over
/// `0..CODE_SPACE`, by rejection sampling. Separate from the RNG so tests can
/// feed it edge cases.
pub fn sample_code_number(mut draw: impl FnMut() -> u32) -> u32 {
    loop {
        let x = draw();
        if x < UNBIASED_LIMIT {
            return x % CODE_SPACE;
        }
    }
}

/// A fresh code: six digits, uniform over `000000`–`999999`, leading zeros kept.
pub fn random_code() -> String {
    format!("{:06}", sample_code_number(random_u32))
}

/// `n` fresh codes, each as [`random_code`] draws them, from one call to
/// the OS generator rather than one each.
pub fn random_codes(n: usize) -> Vec<String> {
    let mut bytes = vec![0u8; n * 4];
    fill_random(&mut bytes);
    let mut words = bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    // A rejected draw (about one in 4,300) is made up from the OS directly.
    (0..n)
        .map(|_| {
            let number = sample_code_number(|| words.next().unwrap_or_else(random_u32));
            format!("{number:06}")
        })
        .collect()
}

/// How many leading bytes of a session id or stream ticket are the time it
/// was made (milliseconds since the Unix epoch, big-endian: 48 bits last
/// until the year 10889).
const TIME_PREFIX_LEN: usize = 6;

/// `N` bytes: the time now as [`TIME_PREFIX_LEN`] big-endian bytes, then
/// random ones. Ids made one after the other sort one after the other, so
/// the store's indexes on them fill at their end: a burst of new sessions
/// touches a few pages of each index instead of one random page per
/// session (which is what made every code cost about nine written pages).
fn time_ordered<const N: usize>() -> [u8; N] {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    made_at(ms)
}

/// As [`time_ordered`], made at `ms`.
fn made_at<const N: usize>(ms: u64) -> [u8; N] {
    let mut b = [0u8; N];
    b[..TIME_PREFIX_LEN].copy_from_slice(&ms.to_be_bytes()[8 - TIME_PREFIX_LEN..]);
    fill_random(&mut b[TIME_PREFIX_LEN..]);
    b
}

/// A fresh session id as 32 lowercase hex digits: the time it was made
/// (48 bits) then 80 random bits. A session id is not a credential (every
/// call on a session also needs its device token, ticket or agent), so it
/// needs to be unique and unguessable enough to enumerate, not secret; 80
/// random bits per millisecond are that.
pub fn new_session_id() -> String {
    hex::encode(time_ordered::<16>())
}

/// True when `id` has the shape of a session id, so malformed ids can be
/// answered without a store lookup.
pub fn is_session_id(id: &str) -> bool {
    is_lower_hex(id, 32)
}

/// True when `s` is `len` lowercase hex digits, the shape of every id,
/// token and ticket made here.
fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh device token: 256 random bits as 64 lowercase hex digits.
pub fn new_device_token() -> String {
    let mut b = [0u8; 32];
    fill_random(&mut b);
    hex::encode(b)
}

/// True when `token` has the shape of a device token.
pub fn is_device_token(token: &str) -> bool {
    is_lower_hex(token, 64)
}

/// Prefix of an agent API token, so a leaked one is recognisable (and
/// scannable) as ours, and the broker can tell it from a JWT at a glance.
pub const API_TOKEN_PREFIX: &str = "aat_";

/// Prefix of an agent id issued by the CLI.
pub const AGENT_ID_PREFIX: &str = "agt_";

/// A fresh agent id: `agt_` and 64 random bits as 16 lowercase hex digits.
/// Not a secret; only unique.
pub fn new_agent_id() -> String {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    format!("{AGENT_ID_PREFIX}{}", hex::encode(b))
}

/// A fresh agent API token: `aat_` and 256 random bits as 64 lowercase hex digits.
pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", new_device_token())
}

/// True when `token` has the shape of an agent API token.
pub fn is_api_token(token: &str) -> bool {
    token
        .strip_prefix(API_TOKEN_PREFIX)
        .is_some_and(is_device_token)
}

/// How long a stream ticket can be used to (re)connect, in seconds. Long
/// enough for an `EventSource` to ride out a network blip, short enough that
/// a ticket copied out of a URL is soon worthless.
pub const STREAM_TICKET_TTL_SECS: u32 = 300;

/// Length of a stream ticket in hex digits: the time it was made (6 bytes)
/// and 128 random bits.
pub const STREAM_TICKET_LEN: usize = 2 * (TIME_PREFIX_LEN + 16);

/// A fresh stream ticket as 44 lowercase hex digits: the time it was made,
/// then 128 random bits (the secret part). It travels in a URL
/// (`EventSource` cannot send headers), so it is short-lived and reads one
/// session's events only.
pub fn new_stream_ticket() -> String {
    hex::encode(time_ordered::<{ TIME_PREFIX_LEN + 16 }>())
}

/// True when `ticket` has the shape of a stream ticket.
pub fn is_stream_ticket(ticket: &str) -> bool {
    is_lower_hex(ticket, STREAM_TICKET_LEN)
}

/// What the store keeps of a stream ticket, and finds it by: the ticket's
/// time prefix, then the first 26 bytes of its SHA-256 (208 bits, far past
/// what trying could reverse). Tickets made one after the other get keys
/// that sort one after the other, so the tickets' table fills at its end.
/// A string that is not a ticket's shape still gets a key (its hash with
/// zeros in front), which no stored ticket has.
pub fn ticket_key(ticket: &str) -> Digest32 {
    let mut key = [0u8; 32];
    if is_stream_ticket(ticket) {
        // Cannot fail on a ticket's shape: 12 hex digits are 6 bytes.
        let _ = hex::decode_to_slice(&ticket[..2 * TIME_PREFIX_LEN], &mut key[..TIME_PREFIX_LEN]);
    }
    let hash = Sha256::digest(ticket.as_bytes());
    key[TIME_PREFIX_LEN..].copy_from_slice(&hash[..32 - TIME_PREFIX_LEN]);
    key
}

/// What the store keeps of a device token or an agent API token.
pub fn hash_token(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in constant time, so response timing does not tell an
/// attacker how much of a guessed token was right.
pub fn digests_match(a: &Digest32, b: &Digest32) -> bool {
    a.ct_eq(b).into()
}

/// A fresh random secret for [`CodeHasher`].
pub fn new_code_secret() -> [u8; CODE_SECRET_LEN] {
    let mut b = [0u8; CODE_SECRET_LEN];
    fill_random(&mut b);
    b
}

/// Turns `(site, code)` into what the store keeps: HMAC-SHA256(secret,
/// `site_key:code`). Including the site key means the same code at two
/// sites has unrelated hashes.
#[derive(Clone)]
pub struct CodeHasher {
    mac: Hmac<Sha256>,
}

impl CodeHasher {
    pub fn new(secret: &[u8; CODE_SECRET_LEN]) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key");
        Self { mac }
    }

    pub fn hash(&self, site_key: &str, code: &str) -> Digest32 {
        let mut mac = self.mac.clone();
        mac.update(site_key.as_bytes());
        mac.update(b":");
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must not end up in a log line through `{:?}`.
        f.write_str("CodeHasher(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_digits_are_uniform() {
        const DRAWS: usize = 50_000;
        let mut counts = [0usize; 10];
        for _ in 0..DRAWS {
            let code = random_code();
            counts[usize::from(code.as_bytes()[0] - b'0')] += 1;
        }
        for (digit, n) in counts.iter().enumerate() {
            assert!(
                (4_500..=5_500).contains(n),
                "digit {digit} drawn {n} times: {counts:?}"
            );
        }
    }

    #[test]
    fn last_digits_are_uniform() {
        let mut counts = [0usize; 10];
        for _ in 0..50_000 {
            let code = random_code();
            counts[usize::from(code.as_bytes()[5] - b'0')] += 1;
        }
        assert!(
            counts.iter().all(|n| (4_500..=5_500).contains(n)),
            "{counts:?}"
        );
    }

    #[test]
    fn codes_keep_leading_zeros() {
        assert_eq!(format!("{:06}", sample_code_number(|| 42)), "000042");
        assert_eq!(format!("{:06}", sample_code_number(|| 0)), "000000");
        // Over many draws, about one code in ten starts with 0 and each one
        // is still six digits long.
        let codes: Vec<String> = (0..2_000).map(|_| random_code()).collect();
        assert!(codes
            .iter()
            .all(|c| agent_assist_protocol::is_valid_code(c)));
        assert!(codes.iter().any(|c| c.starts_with('0')));
    }

    #[test]
    fn draws_in_the_biased_tail_are_rejected() {
        let mut draws = [u32::MAX, UNBIASED_LIMIT, UNBIASED_LIMIT - 1].into_iter();
        let n = sample_code_number(|| draws.next().unwrap());
        assert_eq!(n, (UNBIASED_LIMIT - 1) % CODE_SPACE);
        assert_eq!(n, 999_999);
    }

    #[test]
    fn ids_and_tokens_have_their_shape_and_differ() {
        let (a, b) = (new_session_id(), new_session_id());
        assert!(is_session_id(&a) && is_session_id(&b) && a != b);
        let (t, u) = (new_device_token(), new_device_token());
        assert!(is_device_token(&t) && is_device_token(&u) && t != u);
        assert!(!is_session_id(&a.to_uppercase()));
    }

    #[test]
    fn agent_ids_api_tokens_and_tickets_have_their_shape() {
        let id = new_agent_id();
        assert!(id.starts_with("agt_") && id.len() == 20, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        let token = new_api_token();
        assert!(is_api_token(&token) && token.len() == 68, "{token}");
        assert!(!is_api_token(&token[4..]));
        assert!(!is_api_token(&format!("aat_{}", &token[5..])));
        assert_ne!(new_api_token(), token);
        let ticket = new_stream_ticket();
        assert!(is_stream_ticket(&ticket) && ticket != new_stream_ticket());
        assert_eq!(ticket.len(), 44);
        assert!(!is_stream_ticket(&ticket[..32]) && !is_stream_ticket(&ticket.to_uppercase()));
    }

    #[test]
    fn ids_and_tickets_made_later_sort_later() {
        let id_at = |ms| hex::encode(made_at::<16>(ms));
        let ticket_at = |ms| hex::encode(made_at::<22>(ms));
        assert!(id_at(1_700_000_000_000) < id_at(1_700_000_000_001));
        assert!(id_at(1_700_000_000_001) < id_at(1_800_000_000_000));
        assert!(is_session_id(&id_at(1)) && is_stream_ticket(&ticket_at(1)));
        let (a, b) = (ticket_at(1_700_000_000_000), ticket_at(1_700_000_000_001));
        assert!(ticket_key(&a) < ticket_key(&b));
        // The key holds the hash of the whole ticket: its random part counts.
        let last = if a.ends_with('0') { "1" } else { "0" };
        assert_ne!(ticket_key(&a), ticket_key(&format!("{}{last}", &a[..43])));
    }

    #[test]
    fn code_hashes_depend_on_site_and_secret() {
        let h = CodeHasher::new(&[7; 32]);
        assert_eq!(h.hash("demo", "123456"), h.hash("demo", "123456"));
        assert_ne!(h.hash("demo", "123456"), h.hash("other", "123456"));
        assert_ne!(
            h.hash("demo", "123456"),
            CodeHasher::new(&[8; 32]).hash("demo", "123456")
        );
    }

    #[test]
    fn token_digests_compare() {
        let t = new_device_token();
        assert!(digests_match(&hash_token(&t), &hash_token(&t)));
        assert!(!digests_match(
            &hash_token(&t),
            &hash_token(&new_device_token())
        ));
    }
}
