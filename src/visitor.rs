//! The anonymous visitor id (seed 002): 128 random bits as 32 lowercase hex,
//! made on the visitor's first code request — never on page load — and kept
//! where the site chose (`visitorStorage`), so that the broker recognises a
//! returning visitor and can merge their earlier tickets once they log in.
//!
//! Storage that is blocked (a sandboxed frame, some private modes: the
//! getter throws or gives `null`, or writing throws) falls back to memory
//! without a word: the id then lasts as long as the widget, on this page.

/// Where the id is kept (`visitorStorage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// `localStorage`: the same id in every tab, across visits.
    Local,
    /// `sessionStorage`: this tab only, gone when it closes.
    Session,
    /// This widget on this page only: a new id on every page load.
    Memory,
}

/// One widget's visitor id: where it is kept, and the id itself when it
/// lives in memory (the `memory` choice, or storage that is blocked).
#[derive(Debug)]
pub struct VisitorId {
    key: String,
    keep: Keep,
    memory: Option<String>,
}

impl VisitorId {
    /// Reads and writes nothing yet: that waits for the first request.
    pub fn new(site_key: &str, keep: Keep) -> VisitorId {
        VisitorId {
            key: ["agent-assist:visitor:", site_key].concat(),
            keep,
            memory: None,
        }
    }

    /// The visitor's id, made now if there is none yet. `None` only if the
    /// browser has no source of randomness at all: the visitor then asks for
    /// codes without an id, as one who cleared their storage would.
    pub fn get_or_create(&mut self) -> Option<String> {
        let store = storage(self.keep);
        // Storage is read first and is the truth: another widget or tab of
        // the site sees the same id, and a `reset()` in one tab holds in all.
        if let Some(id) = store
            .as_ref()
            .and_then(|s| s.get_item(&self.key).ok().flatten())
            .filter(|id| is_valid(id))
        {
            return Some(id);
        }
        if let Some(id) = &self.memory {
            return Some(id.clone());
        }
        let id = new_id()?;
        // A full or blocked storage keeps the id in memory instead.
        if store.is_none_or(|s| s.set_item(&self.key, &id).is_err()) {
            self.memory = Some(id.clone());
        }
        Some(id)
    }

    /// Forgets the id on this browser, wherever it was kept (`reset()`:
    /// logout, shared devices). The next request makes a new one.
    pub fn forget(&mut self) {
        self.memory = None;
        for keep in [Keep::Local, Keep::Session] {
            if let Some(s) = storage(keep) {
                let _ = s.remove_item(&self.key);
            }
        }
    }
}

fn storage(keep: Keep) -> Option<web_sys::Storage> {
    let window = web_sys::window()?;
    // Either getter throws (SecurityError) or gives null where storage is blocked.
    match keep {
        Keep::Local => window.local_storage().ok().flatten(),
        Keep::Session => window.session_storage().ok().flatten(),
        Keep::Memory => None,
    }
}

fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

/// Lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// True for an id this module could have made: 32 lowercase hex digits.
/// Anything else found in storage (edited, or another script's) is replaced.
pub fn is_valid(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_lowercase_hex_digits_from_16_random_bytes() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        let a = new_id().expect("randomness");
        let b = new_id().expect("randomness");
        assert!(is_valid(&a), "{a}");
        assert_ne!(a, b, "128 random bits do not repeat");
    }

    #[test]
    fn only_well_formed_ids_are_taken_from_storage() {
        assert!(is_valid("0123456789abcdef0123456789abcdef"));
        assert!(!is_valid("0123456789ABCDEF0123456789ABCDEF"));
        assert!(!is_valid("0123456789abcdef0123456789abcde"));
        assert!(!is_valid("0123456789abcdef0123456789abcdeg"));
        assert!(!is_valid(""));
    }
}
