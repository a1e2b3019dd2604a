//! Redaction: how much of an element the agent may see, decided in the
//! visitor's browser before anything is serialised.
//!
//! An element is [`Class::Skip`] (never sent, nor anything inside),
//! [`Class::Box`] (sent as a redacted box: its size, nothing else) or
//! [`Class::Visible`] (its allowed attributes, its value, its children).
//! Explicit redaction always wins over `unredact`, which only matters in
//! private-by-default mode.

use agent_assist_protocol::mirror::{element_allowed, redacted_element_allowed, Ns};
use js_sys::WeakSet;
use wasm_bindgen::JsCast;
use web_sys::{Element, Node};

/// The widget's own element. Its UI lives in its shadow root, which is
/// never read; the element is left out with anything inside it.
pub const WIDGET_TAG: &str = "agent-assist-widget";

/// Marks an element (and everything inside) as hidden from the agent.
pub const REDACT_ATTR: &str = "data-agent-assist-redact";
/// Marks an area the agent may read in private-by-default mode.
pub const UNREDACT_ATTR: &str = "data-agent-assist-unredact";

/// Elements shown only as boxes: their contents are other documents,
/// plugins, or pixels that may show anything (other origins are never
/// looked into, and no frame is looked into at all).
const BOXED: &[&str] = &[
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "portal",
    "fencedframe",
    "video",
    "canvas",
];

const FIELDS: &[&str] = &["input", "textarea", "select"];
/// Redacted in private-by-default mode outside unredacted areas (with
/// `svg`, whose root is in the SVG namespace).
const MEDIA: &[&str] = &["img", "video", "canvas", "picture"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Skip,
    Box,
    Visible,
}

pub struct Policy {
    /// `[data-agent-assist-redact]` and the site's `redact` selectors, as
    /// one selector list (each was checked by `Options`).
    explicit: String,
    /// `[data-agent-assist-unredact]` and the site's `unredact` selectors.
    unredact: String,
    /// The site's own selectors, for the outline stylesheet.
    pub redact_list: Vec<String>,
    pub unredact_list: Vec<String>,
    pub private: bool,
    /// Inputs that were `type=password` at any moment this page was
    /// watched: a "show password" toggle turns them into text fields, and
    /// they stay redacted.
    ever_password: WeakSet,
}

impl Policy {
    pub fn new(redact: Vec<String>, unredact: Vec<String>, private: bool) -> Policy {
        Policy {
            explicit: selector_list(REDACT_ATTR, &redact),
            unredact: selector_list(UNREDACT_ATTR, &unredact),
            redact_list: redact,
            unredact_list: unredact,
            private,
            ever_password: WeakSet::new(),
        }
    }

    /// `el`'s class, `unredacted` telling whether it is inside (or is) an
    /// unredacted area.
    pub fn classify(&self, el: &Element, unredacted: bool) -> Class {
        match namespace(el) {
            Some(ns) => self.classify_named(el, ns, &el.local_name(), unredacted),
            None => Class::Skip,
        }
    }

    pub fn classify_named(&self, el: &Element, ns: Ns, name: &str, unredacted: bool) -> Class {
        // Not even a box can carry a name the protocol cannot spell (custom
        // elements may have `.`, `_` or non-ASCII letters in theirs).
        if !redacted_element_allowed(name) {
            return Class::Skip;
        }
        if ns == Ns::Html {
            if name == WIDGET_TAG {
                return Class::Skip;
            }
            if BOXED.contains(&name) {
                return Class::Box;
            }
        }
        // Only a link's `rel` matters to `element_allowed`.
        let allowed = if name.eq_ignore_ascii_case("link") {
            let rel = el.get_attribute("rel").unwrap_or_default();
            element_allowed(name, &[("rel".to_owned(), rel)])
        } else {
            element_allowed(name, &[])
        };
        if !allowed {
            Class::Skip
        } else if self.explicitly_redacted(el, ns, name)
            || (self.private && !unredacted && private_target(el, ns, name))
        {
            Class::Box
        } else {
            Class::Visible
        }
    }

    /// Redacted whatever the mode: password and card fields, the redact
    /// attribute and the site's redact selectors.
    fn explicitly_redacted(&self, el: &Element, ns: Ns, name: &str) -> bool {
        if ns == Ns::Html && FIELDS.contains(&name) {
            if name == "input" {
                if is_password(el.get_attribute("type").as_deref()) {
                    self.ever_password.add(el);
                    return true;
                }
                if self.ever_password.has(el) {
                    return true;
                }
            }
            if el
                .get_attribute("autocomplete")
                .is_some_and(|a| secret_autocomplete(&a))
            {
                return true;
            }
        }
        // The selectors were checked at start; should one throw anyway,
        // redact rather than show.
        el.matches(&self.explicit).unwrap_or(true)
    }

    /// Whether `el` is, or is inside, an unredacted area (private-by-default
    /// mode only; elsewhere there is nothing to unredact).
    pub fn in_unredacted(&self, el: &Element) -> bool {
        self.private && matches!(el.closest(&self.unredact), Ok(Some(_)))
    }

    /// Whether `el` itself starts an unredacted area.
    pub fn starts_unredacted(&self, el: &Element) -> bool {
        self.private && el.matches(&self.unredact).unwrap_or(false)
    }

    /// The nearest ancestor of `el` that is explicitly redacted, if any:
    /// the redact attribute or a site selector may match an ancestor that
    /// has not changed itself (a descendant combinator, `.private input`).
    pub fn redacted_ancestor(&self, el: &Element) -> Option<Element> {
        el.parent_element()?.closest(&self.explicit).ok().flatten()
    }

    /// Elements below `el` that an explicit selector matches (used after
    /// `el`'s attributes changed: `.private input` may match inputs now).
    pub fn redacted_below(&self, el: &Element) -> Vec<Element> {
        let Ok(list) = el.query_selector_all(&self.explicit) else {
            return Vec::new();
        };
        (0..list.length())
            .filter_map(|i| list.item(i).and_then(|n| n.dyn_into::<Element>().ok()))
            .collect()
    }

    /// Remembers an input that was a password field before a `type` change.
    pub fn note_old_type(&self, el: &Element, old: Option<&str>) {
        if el.local_name() == "input" && is_password(old) {
            self.ever_password.add(el);
        }
    }
}

/// The element's namespace, if it is one the mirror knows.
pub fn namespace(el: &Element) -> Option<Ns> {
    let uri = el.namespace_uri()?;
    [Ns::Html, Ns::Svg, Ns::Math]
        .into_iter()
        .find(|ns| ns.uri() == uri)
}

fn is_password(kind: Option<&str>) -> bool {
    kind.is_some_and(|t| t.trim().eq_ignore_ascii_case("password"))
}

/// `autocomplete` tokens of secrets: passwords, one-time codes, and every
/// payment-card field (`cc-number`, `cc-csc`, `cc-exp`, `cc-name`, …).
pub fn secret_autocomplete(value: &str) -> bool {
    value.split_ascii_whitespace().any(|token| {
        ["current-password", "new-password", "one-time-code"]
            .iter()
            .any(|s| token.eq_ignore_ascii_case(s))
            || token
                .get(..3)
                .is_some_and(|p| p.eq_ignore_ascii_case("cc-"))
    })
}

/// Private-by-default: form fields, media, and elements that directly
/// hold text (the text of `<style>` is the page's CSS, not the visitor's).
fn private_target(el: &Element, ns: Ns, name: &str) -> bool {
    match ns {
        Ns::Html if FIELDS.contains(&name) || MEDIA.contains(&name) => return true,
        Ns::Svg if name == "svg" => return true,
        _ => {}
    }
    name != "style" && has_direct_text(el)
}

/// Whether one of `el`'s own text nodes has something other than whitespace.
pub fn has_direct_text(el: &Element) -> bool {
    let mut child = el.first_child();
    while let Some(node) = child {
        if node.node_type() == Node::TEXT_NODE
            && node
                .node_value()
                .is_some_and(|t| t.chars().any(|c| !c.is_whitespace()))
        {
            return true;
        }
        child = node.next_sibling();
    }
    false
}

fn selector_list(attr: &str, selectors: &[String]) -> String {
    let mut list = ["[", attr, "]"].concat();
    for s in selectors {
        list.push_str(", ");
        list.push_str(s);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn password_code_and_card_autocomplete_tokens_are_secret() {
        for secret in [
            "current-password",
            "new-password",
            "one-time-code",
            "cc-number",
            "billing CC-CSC",
            "section-pay shipping cc-exp",
        ] {
            assert!(secret_autocomplete(secret), "{secret}");
        }
        for plain in ["email", "username", "off", "", "acc-number", "name"] {
            assert!(!secret_autocomplete(plain), "{plain}");
        }
    }
}
